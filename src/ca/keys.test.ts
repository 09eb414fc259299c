import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describeKey, encodeP256KeyPair, generateKeyPair } from './index.js';
import { spkiOf } from './keys.js';

describe('ca: keys', () => {
  it('generates ECDSA P-256 by default and RSA 2048 on request', () => {
    assert.deepEqual(describeKey(generateKeyPair().publicKey), { ok: true, value: 'ec-p256' });
    assert.deepEqual(describeKey(generateKeyPair('rsa-2048').privateKey), { ok: true, value: 'rsa-2048' });
  });

  it('rejects weak and unsupported keys', () => {
    assert.equal(describeKey(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey).ok, false);
    assert.equal(describeKey(generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey).ok, false);
    assert.equal(describeKey(generateKeyPairSync('ed25519').publicKey).ok, false);
  });

  it('encodes SubjectPublicKeyInfo byte-for-byte as the slow SPKI export does', () => {
    for (let i = 0; i < 50; i++) {
      const k = generateKeyPair().publicKey;
      assert.deepEqual(spkiOf(k, 'ec-p256'), k.export({ type: 'spki', format: 'der' }));
    }
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;
    assert.deepEqual(spkiOf(p384, 'ec-p384'), p384.export({ type: 'spki', format: 'der' }));
    const rsa = generateKeyPair('rsa-2048').publicKey;
    assert.deepEqual(spkiOf(rsa, 'rsa-2048'), rsa.export({ type: 'spki', format: 'der' }));
  });
  it('encodes a P-256 key pair from its JWK exactly as OpenSSL does (SPKI DER, PKCS#8 PEM)', () => {
    for (let i = 0; i < 20; i++) {
      const { privateKey, publicKey } = generateKeyPair('ec-p256');
      const { spkiDer, pkcs8Pem } = encodeP256KeyPair(privateKey);
      assert.deepEqual(spkiDer, publicKey.export({ type: 'spki', format: 'der' }));
      assert.equal(pkcs8Pem, privateKey.export({ type: 'pkcs8', format: 'pem' }));
      // And the encodings parse back to the same key.
      assert.ok(createPrivateKey(pkcs8Pem).equals(privateKey));
      assert.ok(createPublicKey({ key: spkiDer, format: 'der', type: 'spki' }).equals(publicKey));
    }
    assert.throws(() => encodeP256KeyPair(generateKeyPair('rsa-2048').privateKey), /needs a P-256 private key/);
  });
});
