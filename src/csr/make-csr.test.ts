import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { generateKeyPair, parseCsr } from '../ca/index.js';
import { makeCsr } from './make-csr.js';

const ID = 'spiffe://cluster.local/ns/vm/sa/vm-app';

describe('csr: makeCsr', () => {
  it('makes an ECDSA P-256 CSR that parseCsr verifies, with the requested SANs', async () => {
    const keys = generateKeyPair('ec-p256');
    const r = await parseCsr(makeCsr({ privateKey: keys.privateKey, uriSans: [ID], dnsSans: ['vm.example'] }));
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.ok(r.value.publicKey.equals(keys.publicKey));
    assert.deepEqual(r.value.uriSans, [ID]);
    assert.deepEqual(r.value.dnsSans, ['vm.example']);
    assert.equal(r.value.requestsCa, false);
  });

  it('makes RSA CSRs and CA requests', async () => {
    const keys = generateKeyPair('rsa-2048');
    const r = await parseCsr(makeCsr({ privateKey: keys.privateKey, uriSans: [ID], requestCa: true, organization: 'cluster.local' }));
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.equal(r.value.keyDescription, 'rsa-2048');
    assert.equal(r.value.requestsCa, true);
  });

  it('is readable by openssl, which checks its signature', () => {
    const keys = generateKeyPair('ec-p256');
    const out = execFileSync('openssl', ['req', '-noout', '-verify', '-text'], {
      input: makeCsr({ privateKey: keys.privateKey, uriSans: [ID] }),
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    assert.match(out, new RegExp(`URI:${ID}`));
  });

  it('signs with weak keys too, so tests can see them refused', async () => {
    const p192 = generateKeyPairSync('ec', { namedCurve: 'prime192v1' });
    const r = await parseCsr(makeCsr({ privateKey: p192.privateKey, uriSans: [ID] }));
    assert.match(r.ok ? '' : r.error.message, /curve/);
  });
});
