import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { createManualClock } from '../lib/index.js';
import { KeyUnavailableError, signatureAlgorithmFor } from './keys.js';
import { ecdsaRawToDer, generatePkcs11Key, importPkcs11Key, openPkcs11Key, readPinFile } from './pkcs11-signer.js';
import type { Pkcs11KeyRef } from './pkcs11-signer.js';
import { createSoftHsm } from './softhsm-kit.js';
import type { SoftHsm } from './softhsm-kit.js';

const ES256 = signatureAlgorithmFor('ec-p256');

describe('pkcs11 signer (SoftHSM2)', () => {
  let hsm: SoftHsm;
  let ref: Pkcs11KeyRef;
  beforeEach(() => {
    hsm = createSoftHsm();
    ref = { module: hsm.module, tokenLabel: hsm.tokenLabel, keyLabel: 'ca-key', pin: hsm.pin };
  });
  afterEach(() => hsm.remove());

  it('converts r||s to DER that node verifies', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    for (let i = 0; i < 50; i++) {
      const data = Buffer.from(`message ${i}`);
      const raw = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      const der = ecdsaRawToDer(raw);
      assert.ok(verify('sha256', data, publicKey, der), `signature ${i}`);
      assert.ok(verify('sha256', data, { key: publicKey, dsaEncoding: 'der' }, der));
    }
    // Leading zeros are dropped and a high bit gets a 0x00 pad (DER INTEGER is signed, minimal).
    const raw = Buffer.concat([Buffer.alloc(31), Buffer.from([0x05]), Buffer.from([0x80]), Buffer.alloc(31, 1)]);
    assert.equal(ecdsaRawToDer(raw).toString('hex'), '3026' + '020105' + '0221' + '0080' + '01'.repeat(31));
  });

  it('generates a non-extractable P-256 key in the token and signs with it (C_Sign, DER signature)', () => {
    const pub = generatePkcs11Key(ref);
    assert.ok(pub.ok, pub.ok ? '' : pub.error);
    const key = openPkcs11Key(ref);
    assert.ok(key.ok, key.ok ? '' : key.error);
    try {
      assert.ok(key.value.publicKey.export({ format: 'der', type: 'spki' }).equals(pub.value.export({ format: 'der', type: 'spki' })));
      const tbs = Buffer.from('to be signed');
      const sig = key.value.sign(ES256, tbs);
      assert.ok(verify('sha256', tbs, pub.value, sig));
      assert.match(key.value.description, /'ca-key' in token 'meshpilot-test' \(PKCS#11 module .*libsofthsm2\.so\)/);
    } finally {
      key.value.close();
    }
    // The private key cannot be read out of the token: CKA_VALUE is refused.
    const p = new pkcs11js.PKCS11();
    p.load(hsm.module);
    p.C_Initialize();
    try {
      const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trimEnd() === hsm.tokenLabel)!;
      const session = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
      p.C_Login(session, pkcs11js.CKU_USER, hsm.pin);
      p.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        { type: pkcs11js.CKA_LABEL, value: 'ca-key' },
      ]);
      const [h] = p.C_FindObjects(session, 1);
      p.C_FindObjectsFinal(session);
      const [sensitive, extractable] = p.C_GetAttributeValue(session, h!, [
        { type: pkcs11js.CKA_SENSITIVE },
        { type: pkcs11js.CKA_EXTRACTABLE },
      ]);
      assert.equal((sensitive!.value as Buffer)[0], 1);
      assert.equal((extractable!.value as Buffer)[0], 0);
      assert.throws(() => p.C_GetAttributeValue(session, h!, [{ type: pkcs11js.CKA_VALUE }]), /CKR_ATTRIBUTE_SENSITIVE/);
    } finally {
      p.C_Finalize();
      p.close();
    }
  });

  it('imports a P-256 key once, then refuses the label in use', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const imported = importPkcs11Key(ref, privateKey);
    assert.ok(imported.ok, imported.ok ? '' : imported.error);
    const key = openPkcs11Key(ref);
    assert.ok(key.ok, key.ok ? '' : key.error);
    const sig = key.value.sign(ES256, Buffer.from('x'));
    key.value.close();
    assert.ok(verify('sha256', Buffer.from('x'), publicKey, sig));
    const again = generatePkcs11Key(ref);
    assert.ok(!again.ok);
    assert.match(again.error, /a key 'ca-key' in token 'meshpilot-test' .* exists already/);
  });

  it('refuses a missing module, token, key, or a wrong PIN, naming module, token and key', () => {
    const missingModule = openPkcs11Key({ ...ref, module: '/nonexistent/libpkcs11.so' });
    assert.ok(!missingModule.ok);
    assert.match(missingModule.error, /cannot load PKCS#11 module \/nonexistent\/libpkcs11\.so/);
    const noToken = openPkcs11Key({ ...ref, tokenLabel: 'no-such-token' });
    assert.ok(!noToken.ok);
    assert.match(
      noToken.error,
      /no token labelled 'no-such-token' in PKCS#11 module .*libsofthsm2.so \(tokens present: 'meshpilot-test'\)/,
    );
    const noKey = openPkcs11Key(ref);
    assert.ok(!noKey.ok);
    assert.match(noKey.error, /no private key 'ca-key' in token 'meshpilot-test' \(PKCS#11 module .*\)/);
    assert.ok(generatePkcs11Key(ref).ok);
    const wrongPin = openPkcs11Key({ ...ref, pin: '0000' });
    assert.ok(!wrongPin.ok);
    assert.match(wrongPin.error, /token 'meshpilot-test' \(PKCS#11 module .*\): login failed: wrong PIN/);
  });

  it('reads a PIN file and refuses a missing or empty one, naming the file', () => {
    assert.deepEqual(readPinFile(hsm.pinFile), { ok: true, value: hsm.pin });
    const empty = join(hsm.dir, 'empty');
    writeFileSync(empty, '\n');
    assert.match(String((readPinFile(empty) as { error: string }).error), /empty: the PIN file is empty/);
    assert.match(String((readPinFile(join(hsm.dir, 'none')) as { error: string }).error), /none: cannot read the PIN file \(ENOENT\)/);
  });

  it('a token that goes away: signing throws KeyUnavailableError, retried at most once per interval, then recovers', () => {
    assert.ok(generatePkcs11Key(ref).ok);
    const clock = createManualClock(Date.UTC(2026, 0, 1));
    const key = openPkcs11Key(ref, { clock, retryMs: 5_000 });
    assert.ok(key.ok, key.ok ? '' : key.error);
    try {
      const tbs = Buffer.from('tbs');
      assert.ok(verify('sha256', tbs, key.value.publicKey, key.value.sign(ES256, tbs)));
      hsm.takeAway();
      assert.throws(() => key.value.sign(ES256, tbs), KeyUnavailableError);
      assert.equal(key.value.available(), false);
      hsm.bringBack();
      // Within the retry interval the token is not asked again.
      assert.throws(() => key.value.sign(ES256, tbs), KeyUnavailableError);
      clock.advance(5_000);
      const sig = key.value.sign(ES256, tbs);
      assert.ok(verify('sha256', tbs, key.value.publicKey, sig));
      assert.equal(key.value.available(), true);
    } finally {
      key.value.close();
    }
  });
});
