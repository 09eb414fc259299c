import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
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

  // Found by the CSR fuzzer (src/ca/csr-fuzz-target.ts): asn1js throws on a malformed
  // GeneralizedTime instead of returning an error; parseCsr threw out of the CSR service.
  it('refuses DER on which the ASN.1 reader throws (a malformed GeneralizedTime), never throws', async () => {
    const pem = readFileSync(fileURLToPath(new URL('../../../src/ca/testdata/fuzz-generalized-time.csr.pem', import.meta.url)), 'utf8');
    const r = await parseCsr(pem);
    assert.ok(!r.ok);
    assert.equal(r.error.kind, 'bad-csr');
    assert.match(r.error.message, /^csr is not valid DER \(Wrong input string for conversion\)$/);
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

describe('ca: CSR hardening', () => {
  let dir: string;
  let pem: string;
  const ID = 'subjectAltName=URI:spiffe://cluster.local/ns/a/sa/b';
  const newKey = () => pkcs8(generateKeyPairSync('ec', { namedCurve: 'P-256' }));
  const derOf = (p: string) => Buffer.from(p.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const pemOf = (der: Buffer, label = 'CERTIFICATE REQUEST') =>
    `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
  const refusal = async (p: string) => {
    const r = await parseCsr(p);
    assert.equal(r.ok, false, 'refused');
    return !r.ok ? r.error : { kind: '', message: '' };
  };
  before(() => {
    dir = tempDir();
    pem = opensslCsr(dir, newKey(), [ID]);
  });
  after(() => removeTempDir(dir));

  it('accepts a plain CSR with whitespace around its block', async () => {
    assert.ok((await parseCsr(`\n  ${pem}\n\n`)).ok);
  });

  it('refuses bytes after the DER, even though the signed part verifies', async () => {
    const e = await refusal(pemOf(Buffer.concat([derOf(pem), Buffer.from([0x00, 0x01, 0x02])])));
    assert.equal(e.kind, 'bad-csr');
    assert.match(e.message, /3 bytes after its DER/);
  });

  it('refuses two PEM blocks, of the same or of another type, and text outside the block', async () => {
    assert.match((await refusal(pem + pem)).message, /found 2 PEM block/);
    assert.match((await refusal(pem + pemOf(Buffer.from([0x30, 0x00]), 'CERTIFICATE'))).message, /found 2 PEM block/);
    assert.match((await refusal(`Certificate Request:\n  Data: ...\n${pem}`)).message, /text outside its block/);
    assert.match((await refusal(pem.replace('\n-----END', '!!\n-----END'))).message, /not valid base64/);
  });

  it('reports IP and email SANs, which the CSR service refuses', async () => {
    const r = await parseCsr(opensslCsr(dir, newKey(), [`${ID},IP:10.0.0.1,IP:fe80::1,email:a@example.org`]));
    assert.ok(r.ok);
    assert.deepEqual(r.value.otherSans, ['IP address: 10.0.0.1', 'IP address: fe80:0:0:0:0:0:0:1', 'email: a@example.org']);
  });

  it('reports keyCertSign, cRLSign and name constraints as CA rights, and ignores other key usages', async () => {
    const ku = await parseCsr(opensslCsr(dir, newKey(), [ID, 'keyUsage=critical,digitalSignature,keyCertSign,cRLSign']));
    assert.ok(ku.ok);
    assert.deepEqual(ku.value.caRequests, ['keyUsage keyCertSign', 'keyUsage cRLSign']);
    assert.equal(ku.value.requestsCa, true);
    const nc = await parseCsr(opensslCsr(dir, newKey(), [ID, 'nameConstraints=critical,permitted;DNS:example.org']));
    assert.ok(nc.ok && nc.value.caRequests.includes('nameConstraints'));
    const plain = await parseCsr(opensslCsr(dir, newKey(), [ID, 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=codeSigning']));
    assert.ok(plain.ok);
    assert.deepEqual(plain.value.caRequests, []);
    assert.equal(plain.value.requestsCa, false);
  });
});
