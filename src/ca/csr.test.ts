import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { parseCsr, MAX_CSR_BYTES } from './index.js';
import { opensslCsr, removeTempDir, tempDir } from './testing.js';

const pkcs8 = (k: { privateKey: { export(o: object): string | Buffer } }) =>
  k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

describe('ca: CSR parsing', () => {
  let dir: string;
  before(() => {
    dir = tempDir();
  });
  after(() => removeTempDir(dir));

  it('verifies an ECDSA P-256 CSR and returns its key and SANs', async () => {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = opensslCsr(dir, pkcs8(keys), ['subjectAltName=URI:spiffe://cluster.local/ns/a/sa/b,DNS:a.example']);
    const r = await parseCsr(pem);
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    assert.ok(r.value.publicKey.equals(keys.publicKey));
    assert.deepEqual(r.value.uriSans, ['spiffe://cluster.local/ns/a/sa/b']);
    assert.deepEqual(r.value.dnsSans, ['a.example']);
    assert.equal(r.value.requestsCa, false);
    assert.equal(r.value.keyDescription, 'ec-p256');
  });

  it('accepts RSA 2048 and P-384', async () => {
    const rsa = await parseCsr(opensslCsr(dir, pkcs8(generateKeyPairSync('rsa', { modulusLength: 2048 }))));
    assert.ok(rsa.ok && rsa.value.keyDescription === 'rsa-2048');
    const p384 = await parseCsr(opensslCsr(dir, pkcs8(generateKeyPairSync('ec', { namedCurve: 'P-384' }))));
    assert.ok(p384.ok && p384.value.keyDescription === 'ec-p384');
  });

  it('reports a CSR that asks to be a CA', async () => {
    const pem = opensslCsr(dir, pkcs8(generateKeyPairSync('ec', { namedCurve: 'P-256' })), ['basicConstraints=critical,CA:TRUE']);
    const r = await parseCsr(pem);
    assert.ok(r.ok && r.value.requestsCa);
  });

  it('rejects weak keys: RSA 1024 and P-521', async () => {
    for (const keys of [generateKeyPairSync('rsa', { modulusLength: 1024 }), generateKeyPairSync('ec', { namedCurve: 'P-521' })]) {
      const r = await parseCsr(opensslCsr(dir, pkcs8(keys)));
      assert.equal(!r.ok && r.error.kind, 'bad-csr');
      assert.match(!r.ok ? r.error.message : '', /key rejected/);
    }
  });

  it('rejects a CSR whose signature does not verify', async () => {
    const pem = opensslCsr(dir, pkcs8(generateKeyPairSync('ec', { namedCurve: 'P-256' })), [
      'subjectAltName=URI:spiffe://cluster.local/ns/a/sa/b',
    ]);
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    // Flip a byte inside the signed part (the SAN text), leaving the structure intact.
    const i = der.indexOf(Buffer.from('ns/a/sa/b'));
    der[i] = 'x'.charCodeAt(0);
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const r = await parseCsr(tampered);
    assert.equal(!r.ok && r.error.kind, 'bad-csr');
    assert.match(!r.ok ? r.error.message : '', /signature/);
  });

  it('rejects oversize input, garbage and missing PEM', async () => {
    const big = await parseCsr('x'.repeat(MAX_CSR_BYTES + 1));
    assert.match(!big.ok ? big.error.message : '', /larger than/);
    const none = await parseCsr('hello');
    assert.match(!none.ok ? none.error.message : '', /expected one PEM/);
    const junk = await parseCsr('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n');
    assert.equal(!junk.ok && junk.error.kind, 'bad-csr');
  });
});
