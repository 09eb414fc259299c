// The shared contract suite: every CertificateAuthority backend runs it (STYLE.md 11).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as pkijs from 'pkijs';
import { createManualClock } from '../lib/index.js';
import { mustSpiffeId } from '../identity/index.js';
import { createEphemeralCa, createPluginCa, createSelfSignedCa, generateKeyPair } from './index.js';
import type { CaChange, CertificateAuthority } from './index.js';
import { makeTestCa, openssl, opensslVerify, removeTempDir, tempDir, writePluginDir } from './testing.js';
import { generatePkcs11Key } from './pkcs11-signer.js';
import { createSoftHsm } from './softhsm-kit.js';
import type { SoftHsm } from './softhsm-kit.js';

const ID = mustSpiffeId('spiffe://cluster.local/ns/photo-ns/sa/photo-backend');
const OTHER = mustSpiffeId('spiffe://cluster.local/ns/datastore-ns/sa/datastore');

interface Backend {
  readonly name: string;
  readonly chainLength: number;
  make(dir: string, clock: ReturnType<typeof createManualClock>): CertificateAuthority;
  /** Removes what make() set up outside dir (a SoftHSM2 token). */
  teardown?(): void;
}

// The PKCS#11 backends run against a real SoftHSM2 token, made per test in a temp directory.
let hsm: SoftHsm | undefined;
const tokenKey = () => {
  hsm = createSoftHsm();
  const ref = { module: hsm.module, tokenLabel: hsm.tokenLabel, keyLabel: 'mesh-ca', pin: hsm.pin };
  const pub = generatePkcs11Key(ref);
  assert.ok(pub.ok, pub.ok ? '' : pub.error);
  return { ref, publicKey: pub.value };
};
const removeHsm = () => {
  hsm?.remove();
  hsm = undefined;
};

const backends: Backend[] = [
  { name: 'ephemeral', chainLength: 1, make: (_dir, clock) => createEphemeralCa({ clock }) },
  {
    name: 'self-signed',
    chainLength: 1,
    make(dir, clock) {
      const r = createSelfSignedCa({ stateDir: join(dir, 'state'), clock });
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      return r.value;
    },
  },
  {
    name: 'plug-in',
    chainLength: 2,
    make(dir, clock) {
      const root = makeTestCa({ cn: 'plug-in root', now: clock.now() });
      const intermediate = makeTestCa({ cn: 'plug-in intermediate', issuer: root, now: clock.now() });
      writePluginDir(dir, root, intermediate);
      const r = createPluginCa({ pluginDir: dir, stateDir: join(dir, 'state'), clock });
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      return r.value;
    },
  },
  {
    name: 'pkcs11 self-signed (root key in SoftHSM2)',
    chainLength: 1,
    make(dir, clock) {
      const { ref } = tokenKey();
      const r = createSelfSignedCa({ stateDir: join(dir, 'state'), clock, pkcs11: ref });
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      return r.value;
    },
    teardown: removeHsm,
  },
  {
    name: 'pkcs11 plug-in (intermediate key in SoftHSM2)',
    chainLength: 2,
    make(dir, clock) {
      const { ref, publicKey } = tokenKey();
      const root = makeTestCa({ cn: 'plug-in root', now: clock.now() });
      // The intermediate certificate is for the token's key; its private half never exists outside the token.
      const intermediate = makeTestCa({
        cn: 'hsm intermediate',
        issuer: root,
        now: clock.now(),
        keys: { publicKey, privateKey: publicKey },
      });
      writeFileSync(join(dir, 'ca-cert.pem'), intermediate.pem);
      writeFileSync(join(dir, 'root-cert.pem'), root.pem);
      writeFileSync(join(dir, 'cert-chain.pem'), intermediate.pem + root.pem);
      const r = createPluginCa({ pluginDir: dir, stateDir: join(dir, 'state'), clock, pkcs11: ref });
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      return r.value;
    },
    teardown: removeHsm,
  },
];

for (const b of backends) {
  describe(`ca contract: ${b.name}`, () => {
    let dir: string;
    let ca: CertificateAuthority;
    let clock: ReturnType<typeof createManualClock>;
    const at = () => ['-attime', String(Math.floor(clock.now() / 1000))];
    beforeEach(() => {
      dir = tempDir();
      clock = createManualClock(Date.UTC(2026, 0, 1));
      ca = b.make(dir, clock);
    });
    afterEach(() => {
      ca.close();
      b.teardown?.();
      removeTempDir(dir);
    });

    it('issues SVIDs whose chain verifies to the trust bundle with openssl -x509_strict', async () => {
      const r = ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      assert.equal(r.value.chainPem.length, b.chainLength);
      assert.equal(r.value.chainPem[0], r.value.certificatePem);
      const v = opensslVerify(dir, r.value.chainPem, ca.trustBundle().pem, at());
      assert.equal(v.status, 0, v.output);
    });

    it('publishes a trust bundle with a content version', async () => {
      const bundle = ca.trustBundle();
      assert.equal(bundle.rootsPem.length, 1);
      assert.equal(bundle.pem, bundle.rootsPem.join(''));
      assert.equal(ca.trustBundle().version, bundle.version);
    });

    it('publishes a signed v2 CRL that openssl accepts, empty at first', async () => {
      const [crl, ...rest] = ca.crl();
      assert.ok(crl);
      assert.equal(rest.length, 0);
      assert.deepEqual(crl.revokedSerials, []);
      const parsed = pkijs.CertificateRevocationList.fromBER(crl.der);
      assert.equal(parsed.version, 1);
      assert.equal(parsed.revokedCertificates, undefined);
      assert.ok((parsed.crlExtensions?.extensions ?? []).some((e) => e.extnID === '2.5.29.20'));
      assert.ok((parsed.crlExtensions?.extensions ?? []).some((e) => e.extnID === '2.5.29.35'));
      assert.ok(crl.nextUpdate > crl.thisUpdate);
      writeFileSync(join(dir, 'crl.pem'), crl.pem);
      writeFileSync(join(dir, 'chain.pem'), ca.status().signingCa.pem + ca.trustBundle().pem);
      const v = openssl(['crl', '-verify', '-in', join(dir, 'crl.pem'), '-CAfile', join(dir, 'chain.pem'), '-noout']);
      assert.equal(v.status, 0, v.output);
      assert.match(v.output, /verify OK/);
    });

    it('revokes by serial: the CRL lists it, openssl then refuses the certificate, onChange fires', async () => {
      const changes: CaChange[] = [];
      ca.onChange((c) => changes.push(c));
      const svid = ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
      assert.ok(svid.ok);
      const before = ca.crl()[0]!;
      const r = await ca.revoke(svid.value.serialHex.toUpperCase().replace(/(..)(?=.)/g, '$1:'));
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      assert.equal(r.value.serialHex, svid.value.serialHex);
      assert.deepEqual(changes, [{ kind: 'crl' }]);
      const crl = ca.crl()[0]!;
      assert.deepEqual(crl.revokedSerials, [svid.value.serialHex]);
      assert.ok(crl.crlNumber > before.crlNumber);
      const parsed = pkijs.CertificateRevocationList.fromBER(crl.der);
      assert.equal(
        Buffer.from(parsed.revokedCertificates![0]!.userCertificate.valueBlock.valueHexView).toString('hex'),
        svid.value.serialHex,
      );
      writeFileSync(join(dir, 'crl.pem'), crl.pem);
      const v = opensslVerify(dir, svid.value.chainPem, ca.trustBundle().pem, [...at(), '-crl_check', '-CRLfile', join(dir, 'crl.pem')]);
      assert.notEqual(v.status, 0);
      assert.match(v.output, /certificate revoked/);
      const good = ca.signSvid({ spiffeId: OTHER, publicKey: generateKeyPair().publicKey });
      assert.ok(good.ok);
      const ok2 = opensslVerify(dir, good.value.chainPem, ca.trustBundle().pem, [...at(), '-crl_check', '-CRLfile', join(dir, 'crl.pem')]);
      assert.equal(ok2.status, 0, ok2.output);
      assert.deepEqual(
        ca.status().revoked.map((x) => x.serialHex),
        [svid.value.serialHex],
      );
      assert.ok((await ca.revoke(svid.value.serialHex)).ok, 'revoking twice is harmless');
    });

    it('refuses to revoke an unknown serial with a clear error', async () => {
      const r = await ca.revoke('0123456789abcdef');
      assert.equal(!r.ok && r.error.kind, 'unknown-serial');
      assert.match(!r.ok ? r.error.message : '', /123456789abcdef/);
      const bad = await ca.revoke('not-hex');
      assert.equal(!bad.ok && bad.error.kind, 'bad-request');
    });

    it('revokes every certificate of an identity', async () => {
      const serials = [0, 1].map(() => {
        const r = ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
        assert.ok(r.ok);
        return r.value.serialHex;
      });
      assert.ok(ca.signSvid({ spiffeId: OTHER, publicKey: generateKeyPair().publicKey }).ok);
      const r = await ca.revokeIdentity(ID);
      assert.ok(r.ok);
      assert.deepEqual(r.value.map((x) => x.serialHex).sort(), [...serials].sort());
      assert.deepEqual([...ca.crl()[0]!.revokedSerials].sort(), [...serials].sort());
      const none = await ca.revokeIdentity(mustSpiffeId('spiffe://cluster.local/ns/x/sa/y'));
      assert.deepEqual(none, { ok: true, value: [] });
    });

    it('re-signs the CRL past half its validity and drops expired entries', async () => {
      const changes: CaChange[] = [];
      ca.onChange((c) => changes.push(c));
      const svid = ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey, ttlMs: 3_600_000 });
      assert.ok(svid.ok);
      assert.ok((await ca.revoke(svid.value.serialHex)).ok);
      const first = ca.crl()[0]!;
      clock.advance(2 * 3_600_000);
      ca.maintain();
      const second = ca.crl()[0]!;
      assert.deepEqual(second.revokedSerials, [], 'expired certificates leave the CRL');
      clock.advance(13 * 3_600_000);
      // Reading never re-signs: only maintenance does.
      assert.equal(ca.crl()[0]!.crlNumber, second.crlNumber);
      ca.maintain();
      const third = ca.crl()[0]!;
      assert.ok(third.thisUpdate > second.thisUpdate && third.crlNumber > second.crlNumber && second.crlNumber > first.crlNumber);
      assert.ok(changes.filter((c) => c.kind === 'crl').length >= 3);
    });
  });
}
