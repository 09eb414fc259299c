// The CA with its key in a SoftHSM2 token: refusals at start that name module, token and key;
// a root rotation whose new key is made in the token;
// a token that fails mid-run (issuance `not-ready`, CRLs and state untouched) and comes back.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createManualClock } from '../lib/index.js';
import { mustSpiffeId } from '../identity/index.js';
import { createPluginCa, createSelfSignedCa, generateKeyPair, openCa } from './index.js';
import type { CertificateAuthority } from './index.js';
import { deletePkcs11Key, generatePkcs11Key, openPkcs11Key, pkcs11KeyExists } from './pkcs11-signer.js';
import type { Pkcs11KeyRef } from './pkcs11-signer.js';
import { createSoftHsm } from './softhsm-kit.js';
import type { SoftHsm } from './softhsm-kit.js';
import { makeTestCa, opensslVerify, removeTempDir, tempDir } from './testing.js';

const ID = mustSpiffeId('spiffe://cluster.local/ns/photo-ns/sa/photo-backend');

describe('ca with its key in a PKCS#11 token (SoftHSM2)', () => {
  let hsm: SoftHsm;
  let dir: string;
  let ref: Pkcs11KeyRef;
  let clock: ReturnType<typeof createManualClock>;
  beforeEach(() => {
    hsm = createSoftHsm();
    dir = tempDir();
    ref = { module: hsm.module, tokenLabel: hsm.tokenLabel, keyLabel: 'mesh-root', pin: hsm.pin };
    clock = createManualClock(Date.UTC(2026, 0, 1));
  });
  afterEach(() => {
    hsm.remove();
    removeTempDir(dir);
  });

  const open = (pkcs11: Pkcs11KeyRef | undefined = ref) =>
    createSelfSignedCa({ stateDir: join(dir, 'state'), clock, ...(pkcs11 ? { pkcs11 } : {}) });

  it('keeps only the root certificate and where its key is in the state directory, never a key file', () => {
    assert.ok(generatePkcs11Key(ref).ok);
    const ca = open();
    assert.ok(ca.ok, ca.ok ? '' : ca.error.message);
    const root = ca.value.status().roots[0]!;
    ca.value.close();
    assert.ok(existsSync(join(dir, 'state', 'root-1-cert.pem')));
    assert.ok(existsSync(join(dir, 'state', 'root-1-key.pkcs11.json')));
    assert.ok(!existsSync(join(dir, 'state', 'root-1-key.pem')), 'no key file');
    // A restart with the same token keeps the same root.
    const again = open();
    assert.ok(again.ok, again.ok ? '' : again.error.message);
    assert.equal(again.value.status().roots[0]!.fingerprint256, root.fingerprint256);
    again.value.close();
  });

  it('refuses to start on a missing module, token or key, or a wrong PIN, naming module, token and key', () => {
    const cases: [Pkcs11KeyRef, RegExp][] = [
      [{ ...ref, module: '/nonexistent/libp11.so' }, /cannot load PKCS#11 module \/nonexistent\/libp11\.so/],
      [{ ...ref, tokenLabel: 'other' }, /'mesh-root' in token 'other'.*no token labelled 'other' in PKCS#11 module .*libsofthsm2\.so/],
      [ref, /no private key 'mesh-root' in token 'meshpilot-test' \(PKCS#11 module .*libsofthsm2\.so\)/],
    ];
    for (const [r, re] of cases) {
      const ca = open(r);
      assert.ok(!ca.ok);
      assert.match(ca.error.message, re);
    }
    assert.ok(generatePkcs11Key(ref).ok);
    const wrongPin = open({ ...ref, pin: '0000' });
    assert.ok(!wrongPin.ok);
    assert.match(wrongPin.error.message, /'mesh-root' in token 'meshpilot-test' .*: login failed: wrong PIN/);
    assert.ok(!existsSync(join(dir, 'state', 'ca.json')), 'nothing was initialized');
  });

  it('says which flags a token-held root needs, and refuses flags for a file-held root or another key', () => {
    assert.ok(generatePkcs11Key(ref).ok);
    const first = open();
    assert.ok(first.ok);
    first.value.close();
    const without = openCa({ stateDir: join(dir, 'state'), clock });
    assert.ok(!without.ok);
    assert.match(
      without.error.message,
      /the key of root-1 is 'mesh-root' in token 'meshpilot-test' \(PKCS#11 module .*\): start with --ca-pkcs11-module, --ca-pkcs11-token, --ca-pkcs11-key and --ca-pkcs11-pin-file/,
    );
    const other = { ...ref, keyLabel: 'other-key' };
    assert.ok(generatePkcs11Key(other).ok);
    const wrongKey = open(other);
    assert.ok(!wrongKey.ok);
    assert.match(wrongKey.error.message, /the key of root-1 is 'mesh-root' .* but the flags name 'other-key'/);
    const fileDir = join(dir, 'file-state');
    const fileCa = createSelfSignedCa({ stateDir: fileDir, clock });
    assert.ok(fileCa.ok);
    fileCa.value.close();
    const flagged = createSelfSignedCa({ stateDir: fileDir, clock, pkcs11: ref });
    assert.ok(!flagged.ok);
    assert.match(flagged.error.message, /root-1-key\.pem: this CA's root key is a file, not in a PKCS#11 token/);
  });

  it('rotates a token-held root through prepare, activate and retire, the new key made in the token', async () => {
    assert.ok(generatePkcs11Key(ref).ok);
    const state = join(dir, 'state');
    const first = open();
    assert.ok(first.ok, first.ok ? '' : first.error.message);
    const old = first.value.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
    assert.ok(old.ok);
    const prepared = await first.value.rotateRoot('prepare');
    assert.ok(prepared.ok, prepared.ok ? '' : prepared.error.message);
    first.value.close();
    assert.equal(prepared.value.roots.length, 2);
    assert.deepEqual(JSON.parse(readFileSync(join(state, 'root-2-key.pkcs11.json'), 'utf8')), {
      module: hsm.module,
      tokenLabel: hsm.tokenLabel,
      keyLabel: 'mesh-root-root-2',
    });
    assert.ok(existsSync(join(state, 'root-2-cert.pem')));
    assert.ok(!existsSync(join(state, 'root-2-key.pem')), 'no key file for the new root');
    assert.ok(!readFileSync(join(state, 'root-2-key.pkcs11.json'), 'utf8').includes(hsm.pin), 'the PIN is not recorded');
    // The new key is in the token, and cannot leave it: opening it checks CKA_SENSITIVE and CKA_EXTRACTABLE.
    const newKey = openPkcs11Key({ ...ref, keyLabel: 'mesh-root-root-2' });
    assert.ok(newKey.ok, newKey.ok ? '' : newKey.error);
    const newRootCert = new X509Certificate(readFileSync(join(state, 'root-2-cert.pem')));
    assert.ok(newRootCert.verify(newKey.value.publicKey), 'the new root is self-signed by the token key');
    newKey.value.close();

    // A restart with the same flags opens both keys; activate switches signing to the new root.
    const second = open();
    assert.ok(second.ok, second.ok ? '' : second.error.message);
    const activated = await second.value.rotateRoot('activate');
    assert.ok(activated.ok, activated.ok ? '' : activated.error.message);
    const fresh = second.value.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
    assert.ok(fresh.ok, fresh.ok ? '' : fresh.error.message);
    // During the overlap both chains verify against the bundle, and each only against its own root.
    const [root1, root2] = second.value.trustBundle().rootsPem;
    const at = ['-attime', String(clock.now() / 1000)];
    for (const chain of [old.value.chainPem, fresh.value.chainPem])
      assert.equal(opensslVerify(dir, chain, second.value.trustBundle().pem, at).status, 0);
    assert.equal(opensslVerify(dir, old.value.chainPem, root1!, at).status, 0);
    assert.equal(opensslVerify(dir, fresh.value.chainPem, root2!, at).status, 0);
    assert.notEqual(opensslVerify(dir, fresh.value.chainPem, root1!, at).status, 0);
    const refused = await second.value.rotateRoot('retire');
    assert.ok(!refused.ok);
    assert.match(refused.error.message, /1 unexpired, unrevoked SVID\(s\) signed by the old root/);
    const retired = await second.value.rotateRoot('retire', { force: true });
    assert.ok(retired.ok, retired.ok ? '' : retired.error.message);
    assert.equal(second.value.trustBundle().rootsPem.length, 1);
    second.value.close();
    for (const f of ['root-1-cert.pem', 'root-1-key.pkcs11.json']) assert.ok(!existsSync(join(state, f)), `${f} removed`);
    // The old key object stays in the token for the operator to destroy.
    assert.deepEqual(pkcs11KeyExists(ref), { ok: true, value: true });

    // Restarted after the rotation, the CA signs with the new root; a next rotation takes the next label.
    const third = open();
    assert.ok(third.ok, third.ok ? '' : third.error.message);
    const after = third.value.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
    assert.ok(after.ok);
    assert.equal(opensslVerify(dir, after.value.chainPem, root2!, at).status, 0);
    assert.ok((await third.value.rotateRoot('prepare')).ok);
    third.value.close();
    assert.equal(JSON.parse(readFileSync(join(state, 'root-3-key.pkcs11.json'), 'utf8')).keyLabel, 'mesh-root-root-3');
    // Once the operator destroyed the retired key, the flags name the current root's key instead.
    assert.ok(deletePkcs11Key(ref).ok);
    const gone = open();
    assert.ok(!gone.ok);
    assert.match(gone.error.message, /no private key 'mesh-root' in token 'meshpilot-test'/);
    const renamed = open({ ...ref, keyLabel: 'mesh-root-root-2' });
    assert.ok(renamed.ok, renamed.ok ? '' : renamed.error.message);
    assert.ok(renamed.value.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey }).ok);
    renamed.value.close();
  });

  it('refuses prepare with not-ready while the token is gone, writes nothing, and prepares once it is back', async () => {
    assert.ok(generatePkcs11Key(ref).ok);
    const state = join(dir, 'state');
    const ca = open();
    assert.ok(ca.ok);
    try {
      hsm.takeAway();
      const during = await ca.value.rotateRoot('prepare');
      assert.ok(!during.ok);
      assert.equal(during.error.kind, 'not-ready');
      assert.match(during.error.message, /'mesh-root-root-2' in token 'meshpilot-test'/);
      assert.equal(ca.value.status().roots.length, 1);
      for (const f of ['root-2-cert.pem', 'root-2-key.pkcs11.json']) assert.ok(!existsSync(join(state, f)), `no ${f}`);
      assert.deepEqual(JSON.parse(readFileSync(join(state, 'ca.json'), 'utf8')).issuers, ['root-1']);
      hsm.bringBack();
      clock.advance(2_000);
      const after = await ca.value.rotateRoot('prepare');
      assert.ok(after.ok, after.ok ? '' : after.error.message);
      assert.equal(after.value.roots.length, 2);
      // The old root's key signed again too (its session reconnected after the module looked afresh).
      assert.ok(ca.value.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey }).ok);
    } finally {
      ca.value.close();
    }
  });

  it('removes the new key from the token when the new root cannot be recorded, and prepares on retry', async () => {
    assert.ok(generatePkcs11Key(ref).ok);
    const state = join(dir, 'state');
    const ca = open();
    assert.ok(ca.ok);
    try {
      // A directory where the new root's certificate goes: the write fails after the key was made.
      mkdirSync(join(state, 'root-2-cert.pem'));
      const during = await ca.value.rotateRoot('prepare');
      assert.ok(!during.ok);
      assert.equal(during.error.kind, 'not-ready');
      assert.match(during.error.message, /cannot record the new root root-2: .*root-2-cert\.pem/);
      assert.ok(!existsSync(join(state, 'root-2-key.pkcs11.json')), 'no record left');
      assert.deepEqual(pkcs11KeyExists({ ...ref, keyLabel: 'mesh-root-root-2' }), { ok: true, value: false });
      assert.equal(ca.value.status().roots.length, 1);
      rmdirSync(join(state, 'root-2-cert.pem'));
      const after = await ca.value.rotateRoot('prepare');
      assert.ok(after.ok, after.ok ? '' : after.error.message);
      assert.deepEqual(pkcs11KeyExists({ ...ref, keyLabel: 'mesh-root-root-2' }), { ok: true, value: true });
    } finally {
      ca.value.close();
    }
  });

  it('refuses a plug-in ca-cert.pem that is not for the token key', () => {
    assert.ok(generatePkcs11Key(ref).ok);
    const root = makeTestCa({ cn: 'root', now: clock.now() });
    const intermediate = makeTestCa({ cn: 'intermediate with another key', issuer: root, now: clock.now() });
    writeFileSync(join(dir, 'ca-cert.pem'), intermediate.pem);
    writeFileSync(join(dir, 'root-cert.pem'), root.pem);
    writeFileSync(join(dir, 'cert-chain.pem'), intermediate.pem + root.pem);
    const ca = createPluginCa({ pluginDir: dir, clock, pkcs11: ref });
    assert.ok(!ca.ok);
    assert.match(ca.error.message, /ca-cert\.pem: the certificate is not for the key 'mesh-root' in token 'meshpilot-test'/);
  });

  describe('a token that fails mid-run', () => {
    let ca: CertificateAuthority;
    beforeEach(() => {
      assert.ok(generatePkcs11Key(ref).ok);
      const r = open();
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      ca = r.value;
    });
    afterEach(() => ca.close());

    it('answers not-ready while it is gone, keeps CRL and records, and signs again once it is back', async () => {
      const before = ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
      assert.ok(before.ok);
      const crl = ca.crl()[0]!;
      hsm.takeAway();
      const during = ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
      assert.ok(!during.ok);
      assert.equal(during.error.kind, 'not-ready');
      assert.match(during.error.message, /the CA key is unavailable: 'mesh-root' in token 'meshpilot-test'/);
      // A revocation needs a signed CRL: refused, nothing recorded.
      const revoke = await ca.revoke(before.value.serialHex);
      assert.ok(!revoke.ok);
      assert.equal(revoke.error.kind, 'not-ready');
      assert.deepEqual(ca.status().revoked, []);
      // Maintenance past half the CRL validity cannot re-sign: the last CRL keeps serving, nothing throws.
      clock.advance(13 * 3_600_000);
      ca.maintain();
      assert.equal(ca.crl()[0]!.crlNumber, crl.crlNumber);
      // Certificates already issued still verify: the token is not needed to check them.
      assert.equal(opensslVerify(dir, before.value.chainPem, ca.trustBundle().pem, ['-attime', String(clock.now() / 1000)]).status, 0);
      hsm.bringBack();
      clock.advance(1_000);
      const after = ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
      assert.ok(after.ok, after.ok ? '' : after.error.message);
      assert.equal(opensslVerify(dir, after.value.chainPem, ca.trustBundle().pem, ['-attime', String(clock.now() / 1000)]).status, 0);
      ca.maintain();
      assert.ok(ca.crl()[0]!.crlNumber > crl.crlNumber, 'the stale CRL is re-signed on recovery');
      assert.ok((await ca.revoke(before.value.serialHex)).ok);
    });
  });

  it('a token whose files were removed for good: issuance stays not-ready, the CA keeps answering', () => {
    assert.ok(generatePkcs11Key(ref).ok);
    const r = open();
    assert.ok(r.ok);
    rmSync(join(hsm.dir, 'tokens'), { recursive: true, force: true });
    for (let i = 0; i < 3; i++) {
      clock.advance(2_000);
      const s = r.value.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
      assert.equal(!s.ok && s.error.kind, 'not-ready');
    }
    assert.equal(r.value.trustBundle().rootsPem.length, 1);
    r.value.close();
  });
});
