import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createManualClock } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import { mustSpiffeId } from '../identity/index.js';
import { createPluginCa, generateKeyPair, openCa } from './index.js';
import type { CaError, CertificateAuthority } from './index.js';
import { KeyUsage } from './x509.js';
import { makeTestCa, opensslVerify, removeTempDir, tempDir, writePluginDir } from './testing.js';
import type { TestCa } from './testing.js';

const ID = mustSpiffeId('spiffe://cluster.local/ns/a/sa/b');
const DAY = 86_400_000;

describe('ca: plug-in CA from files', () => {
  const clock = createManualClock(Date.UTC(2026, 0, 1));
  const now = clock.now();
  let dir: string;
  let root: TestCa;
  let intermediate: TestCa;
  before(() => {
    root = makeTestCa({ cn: 'root', now });
    intermediate = makeTestCa({ cn: 'intermediate', issuer: root, now, notAfter: now + 30 * DAY });
  });
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeTempDir(dir));

  const load = () => createPluginCa({ pluginDir: dir, clock });

  function fails(r: Result<CertificateAuthority, CaError>, file: string, problem: RegExp): void {
    assert.equal(r.ok, false, 'expected the plug-in CA to be refused');
    if (r.ok) return;
    assert.equal(r.error.kind, 'bad-material');
    assert.ok(r.error.file?.endsWith(file) && r.error.message.includes(file), r.error.message);
    assert.match(r.error.message, problem);
  }

  it('signs as the intermediate: SVID chains carry it and verify to the root', async () => {
    writePluginDir(dir, root, intermediate);
    const r = load();
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    const svid = r.value.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
    assert.ok(svid.ok);
    assert.equal(svid.value.chainPem[1], intermediate.pem);
    assert.deepEqual(r.value.trustBundle().rootsPem, [root.pem]);
    const v = opensslVerify(dir, svid.value.chainPem, root.pem, ['-attime', String(now / 1000)]);
    assert.equal(v.status, 0, v.output);
    assert.equal(r.value.status().intermediates.length, 1);
  });

  it('accepts a cert-chain.pem without the root and a three-level chain', async () => {
    const mid = makeTestCa({ cn: 'mid', issuer: root, now });
    const issuing = makeTestCa({ cn: 'issuing', issuer: mid, now });
    writePluginDir(dir, root, issuing, { certChain: issuing.pem + mid.pem });
    const r = load();
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    const svid = r.value.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
    assert.ok(svid.ok);
    assert.deepEqual(svid.value.chainPem.slice(1), [issuing.pem, mid.pem]);
    const v = opensslVerify(dir, svid.value.chainPem, root.pem, ['-attime', String(now / 1000)]);
    assert.equal(v.status, 0, v.output);
  });

  it('never issues past the intermediate notAfter', async () => {
    writePluginDir(dir, root, intermediate);
    const r = createPluginCa({ pluginDir: dir, clock: createManualClock(now + 30 * DAY - 3_600_000) });
    assert.ok(r.ok);
    const svid = r.value.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
    assert.ok(svid.ok);
    assert.equal(svid.value.notAfter, Math.floor((now + 30 * DAY) / 1000) * 1000);
  });

  it('refuses files that do not chain to the root, naming cert-chain.pem', async () => {
    const otherRoot = makeTestCa({ cn: 'other root', now });
    writePluginDir(dir, otherRoot, intermediate, { certChain: intermediate.pem });
    fails(load(), 'cert-chain.pem', /does not verify to any root in root-cert\.pem/);
    writePluginDir(dir, root, intermediate, { certChain: intermediate.pem + otherRoot.pem });
    fails(load(), 'cert-chain.pem', /is not signed by the next certificate/);
    writePluginDir(dir, root, intermediate, { certChain: root.pem });
    fails(load(), 'cert-chain.pem', /first certificate must be the CA certificate/);
  });

  it('refuses a key that does not match ca-cert.pem, naming ca-key.pem', async () => {
    writePluginDir(dir, root, intermediate, { caKey: generateKeyPair().privateKey.export({ type: 'pkcs8', format: 'pem' }) as string });
    fails(load(), 'ca-key.pem', /does not match/);
  });

  it('refuses an expired or not-yet-valid CA certificate', async () => {
    const expired = makeTestCa({ cn: 'expired', issuer: root, now, notBefore: now - 10 * DAY, notAfter: now - DAY });
    writePluginDir(dir, root, expired);
    fails(load(), 'ca-cert.pem', /expired/);
    const future = makeTestCa({ cn: 'future', issuer: root, now, notBefore: now + DAY });
    writePluginDir(dir, root, future);
    fails(load(), 'ca-cert.pem', /not valid until/);
  });

  it('refuses a CA certificate that is not a CA or cannot sign certificates', async () => {
    const leafish = makeTestCa({ cn: 'not a ca', issuer: root, now, ca: false, usages: [KeyUsage.digitalSignature] });
    writePluginDir(dir, root, leafish);
    fails(load(), 'ca-cert.pem', /not a CA/);
    const noSign = makeTestCa({ cn: 'no keyCertSign', issuer: root, now, usages: [KeyUsage.cRLSign] });
    writePluginDir(dir, root, noSign);
    fails(load(), 'ca-cert.pem', /lacks the keyCertSign/);
  });

  it('refuses a missing file or garbage, naming it', async () => {
    writePluginDir(dir, root, intermediate);
    rmSync(join(dir, 'root-cert.pem'));
    fails(load(), 'root-cert.pem', /cannot read plug-in CA file: no such file or directory \(ENOENT\)/);
    writePluginDir(dir, root, intermediate, { caCert: 'hello' });
    fails(load(), 'ca-cert.pem', /no PEM certificate/);
    writePluginDir(dir, root, intermediate, { rootCert: intermediate.pem });
    fails(load(), 'root-cert.pem', /not a self-signed root/);
  });

  it('cannot rotate its root and, without cRLSign, cannot revoke (both clear errors)', async () => {
    const noCrl = makeTestCa({ cn: 'no crl', issuer: root, now, usages: [KeyUsage.keyCertSign] });
    writePluginDir(dir, root, noCrl);
    const r = load();
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    const rot = await r.value.rotateRoot('prepare');
    assert.equal(!rot.ok && rot.error.kind, 'bad-state');
    assert.match(!rot.ok ? rot.error.message : '', /replacing its plug-in files/);
    assert.deepEqual(r.value.crl(), []);
    const svid = r.value.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
    assert.ok(svid.ok);
    const rev = await r.value.revoke(svid.value.serialHex);
    assert.equal(!rev.ok && rev.error.kind, 'bad-state');
    assert.match(!rev.ok ? rev.error.message : '', /cRLSign/);
  });

  it('keeps its revocations in a state directory and reopens with openCa', async () => {
    writePluginDir(dir, root, intermediate);
    const stateDir = join(dir, 'state');
    const a = createPluginCa({ pluginDir: dir, stateDir, clock });
    assert.ok(a.ok);
    const svid = a.value.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
    assert.ok(svid.ok && (await a.value.revoke(svid.value.serialHex)).ok);
    a.value.close();
    const b = openCa({ stateDir, clock });
    assert.ok(b.ok, b.ok ? '' : b.error.message);
    assert.equal(b.value.status().mode, 'plug-in');
    assert.deepEqual(b.value.crl()[0]!.revokedSerials, [svid.value.serialHex]);
    b.value.close();
    writeFileSync(join(dir, 'ca-key.pem'), 'junk');
    const c = openCa({ stateDir, clock });
    assert.equal(!c.ok && c.error.kind, 'bad-material');
  });
});
