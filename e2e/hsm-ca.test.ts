// The photo app with its CA root key in a SoftHSM2 token (issue 18 item 5), with real Envoy:
// SVIDs are signed in the token and sidecars talk mTLS with them; when the token goes away,
// the CSR service answers UNAVAILABLE and SDS issuance waits while existing certificates keep
// serving; when it comes back, issuance resumes and a sidecar that was waiting gets its SVID.
// And a root rotation whose new key is made in the token, under load with zero failed requests.
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requestCertificate } from '../src/agent/ca-client.js';
import { generateKeyPair, generatePkcs11Key, pkcs11KeyExists, type Pkcs11KeyRef } from '../src/ca/index.js';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { createSoftHsm, type SoftHsm } from '../src/ca/softhsm-kit.js';
import { makeTestCa, opensslVerify } from '../src/ca/testing.js';
import { makeCsr } from '../src/csr/index.js';
import { eventually, type EnvoyProcess } from './harness/index.js';
import { leafSerials, ownChainPems, trustedCaCount } from './kit/certs.js';
import { formatCounts, startLoad } from './kit/load.js';
import { runMeshpilotAsync } from './kit/processes.js';
import { startMesh, type TestMesh } from './kit/mesh.js';
import { backend, backendHost, datastore, datastoreHost, frontend, ids, photoAppConfig, xfccUri } from './kit/photo-app.js';

describe('CA root key in a PKCS#11 token (SoftHSM2) with real Envoy', function () {
  this.timeout(90_000);
  let hsm: SoftHsm;
  let stateDir: string;
  let mesh: TestMesh;
  let fe: EnvoyProcess;
  let tokenPublicKeyDer: Buffer;

  before(async () => {
    hsm = createSoftHsm({ tokenLabel: 'hsm-e2e' });
    stateDir = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-hsm-state-'));
    const ref: Pkcs11KeyRef = { module: hsm.module, tokenLabel: hsm.tokenLabel, keyLabel: 'mesh-root', pin: hsm.pin };
    const pub = generatePkcs11Key(ref);
    assert.ok(pub.ok, pub.ok ? '' : pub.error);
    tokenPublicKeyDer = pub.value.export({ type: 'spki', format: 'der' });
    mesh = await startMesh({ 'mesh.yaml': photoAppConfig() }, { apps: [frontend, backend, datastore], stateDir, caPkcs11: ref });
    fe = await mesh.startSidecar(frontend);
    await mesh.startSidecar(backend);
  });
  afterEach(function () {
    mesh?.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
    rmSync(stateDir, { recursive: true, force: true });
    hsm?.remove();
  });

  const csrNow = async () => {
    const keys = generateKeyPair('ec-p256');
    const csr = makeCsr({ privateKey: keys.privateKey, publicKey: keys.publicKey, uriSans: [ids.frontend] });
    return requestCertificate(
      { address: `127.0.0.1:${mesh.mp.xdsPort}`, rootPem: mesh.mp.ca.trustBundle().pem, controlPlaneId: mesh.mp.controlPlaneId },
      { kind: 'token', token: await mesh.mp.mintToken('photo-ns', 'photo-frontend') },
      { csr, timeoutMs: 10_000 },
    );
  };

  it('signs the sidecars’ SVIDs with the token key: mTLS traffic flows, chains verify to the root of the token key', async () => {
    const res = await eventually(() => mesh.call(frontend, backendHost), { description: 'frontend → backend' });
    assert.equal(res.status, 200);
    assert.equal(xfccUri((res.json as { headers: Record<string, string> }).headers), ids.frontend);
    const [rootPem] = mesh.mp.ca.trustBundle().rootsPem;
    const root = new X509Certificate(rootPem!);
    assert.ok(root.publicKey.export({ type: 'spki', format: 'der' }).equals(tokenPublicKeyDer), 'the root is the token key’s');
    const chain = await ownChainPems(fe);
    assert.equal(chain.length, 1);
    const leaf = new X509Certificate(chain[0]!);
    assert.ok(leaf.verify(root.publicKey), 'the sidecar’s SVID is signed by the token key');
    assert.equal(leaf.subjectAltName, `URI:${ids.frontend}`);
    const v = opensslVerify(stateDir, chain, rootPem!);
    assert.equal(v.status, 0, v.output);
    assert.deepEqual(
      readdirSync(stateDir).filter((f) => /^root-\d+-key\.pem$/.test(f)),
      [],
      'no CA key file in the state directory',
    );
    assert.ok(existsSync(join(stateDir, 'root-1-key.pkcs11.json')));
  });

  it('token gone: CSRs get UNAVAILABLE, SDS issuance waits, traffic keeps flowing; token back: issuance resumes', async () => {
    hsm.takeAway();
    try {
      const refused = await csrNow();
      assert.ok(!refused.ok, 'a CSR must not be signed while the token is gone');
      assert.equal(refused.error.code, grpc.status.UNAVAILABLE, refused.error.details);
      // Sidecars keep their certificates: traffic between them still flows.
      assert.equal((await mesh.call(frontend, backendHost)).status, 200);
      // A sidecar that starts now cannot get its SVID yet.
      await mesh.startSidecar(datastore, { waitReady: false });
      await eventually(
        () =>
          mesh.logLines.some((l) => l.msg === 'svid not issued' && l.fields.kind === 'not-ready' && l.fields.spiffeId === ids.datastore),
        { timeoutMs: 15_000, description: 'the datastore SVID refused as not-ready' },
      );
      assert.equal((await mesh.call(frontend, backendHost)).status, 200);
    } finally {
      hsm.bringBack();
    }
    const granted = await eventually(
      async () => {
        const r = await csrNow();
        if (!r.ok) throw new Error(`csr: ${r.error.code} ${r.error.details}`);
        return r;
      },
      { timeoutMs: 15_000, description: 'a CSR signed again once the token is back' },
    );
    assert.ok(granted.ok);
    const res = await eventually(
      async () => {
        const r = await mesh.call(backend, datastoreHost);
        if (r.status !== 200) throw new Error(`status ${r.status}`);
        return r;
      },
      { timeoutMs: 45_000, description: 'backend → datastore once the datastore sidecar got its SVID' },
    );
    assert.equal(xfccUri((res.json as { headers: Record<string, string> }).headers), ids.backend);
  });
});

describe('CA intermediate key in a PKCS#11 token (SoftHSM2) under an outside root, with real Envoy', function () {
  this.timeout(90_000);
  let hsm: SoftHsm;
  let pluginDir: string;
  let mesh: TestMesh;
  let fe: EnvoyProcess;
  const root = makeTestCa({ cn: 'outside root', now: Date.now() });
  let intermediatePem: string;

  before(async () => {
    hsm = createSoftHsm({ tokenLabel: 'hsm-e2e-intermediate' });
    pluginDir = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-hsm-plugin-'));
    const ref: Pkcs11KeyRef = { module: hsm.module, tokenLabel: hsm.tokenLabel, keyLabel: 'mesh-intermediate', pin: hsm.pin };
    const pub = generatePkcs11Key(ref);
    assert.ok(pub.ok, pub.ok ? '' : pub.error);
    // The outside root certifies the token's key; the intermediate's private key never exists outside the token.
    intermediatePem = makeTestCa({
      cn: 'meshpilot intermediate in hsm',
      issuer: root,
      now: Date.now(),
      keys: { publicKey: pub.value, privateKey: pub.value },
    }).pem;
    writeFileSync(join(pluginDir, 'ca-cert.pem'), intermediatePem);
    writeFileSync(join(pluginDir, 'root-cert.pem'), root.pem);
    writeFileSync(join(pluginDir, 'cert-chain.pem'), intermediatePem + root.pem);
    const config = photoAppConfig((y) =>
      y.replace('  trustDomain: cluster.local', `  trustDomain: cluster.local\n  caPluginDir: ${pluginDir}`),
    );
    mesh = await startMesh({ 'mesh.yaml': config }, { apps: [frontend, backend], caPkcs11: ref });
    fe = await mesh.startSidecar(frontend);
    await mesh.startSidecar(backend);
  });
  afterEach(function () {
    mesh?.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
    rmSync(pluginDir, { recursive: true, force: true });
    hsm?.remove();
  });

  it('signs SVIDs as the intermediate in the token: traffic flows, chains verify to the outside root', async () => {
    assert.equal(mesh.mp.ca.trustBundle().pem, root.pem);
    const res = await eventually(() => mesh.call(frontend, backendHost), { description: 'frontend → backend' });
    assert.equal(res.status, 200);
    assert.equal(xfccUri((res.json as { headers: Record<string, string> }).headers), ids.frontend);
    const chain = await ownChainPems(fe);
    assert.equal(chain.length, 2, 'leaf and the intermediate');
    assert.equal(chain[1], intermediatePem);
    assert.ok(new X509Certificate(chain[0]!).verify(new X509Certificate(intermediatePem).publicKey), 'signed by the token key');
    const v = opensslVerify(pluginDir, chain, root.pem);
    assert.equal(v.status, 0, v.output);
  });
});

describe('CA root key in a PKCS#11 token (SoftHSM2) rotated under load, with real Envoy', function () {
  this.timeout(120_000);
  let hsm: SoftHsm;
  let stateDir: string;
  let mesh: TestMesh;
  let ref: Pkcs11KeyRef;
  const all: EnvoyProcess[] = [];

  before(async () => {
    hsm = createSoftHsm({ tokenLabel: 'hsm-e2e-rot' });
    stateDir = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-hsmrot-state-'));
    ref = { module: hsm.module, tokenLabel: hsm.tokenLabel, keyLabel: 'mesh-root', pin: hsm.pin };
    const pub = generatePkcs11Key(ref);
    assert.ok(pub.ok, pub.ok ? '' : pub.error);
    mesh = await startMesh({ 'mesh.yaml': photoAppConfig() }, { apps: [frontend, backend], stateDir, caPkcs11: ref, adminPort: 0 });
    all.push(await mesh.startSidecar(frontend), await mesh.startSidecar(backend));
  });
  afterEach(function () {
    mesh?.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
    rmSync(stateDir, { recursive: true, force: true });
    hsm?.remove();
  });

  it('prepares, activates and retires a root whose new key is made in the token, with zero failed requests', async () => {
    await eventually(async () => (await mesh.call(frontend, backendHost)).status === 200, { description: 'first request' });
    // Traffic flows across every phase: each step waits for more requests to succeed after it.
    let okSeen = 0;
    const load = startLoad({
      host: frontend.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: backendHost,
      concurrency: 2,
      maxDurationMs: 90_000,
      pauseMs: 10,
      onResponse: () => okSeen++,
    });
    const moreTraffic = async (step: string) => {
      const from = okSeen;
      await eventually(() => okSeen >= from + 30, { description: `requests to succeed after ${step}` });
    };
    try {
      await moreTraffic('the start');
      const prepared = await mesh.mp.ca.rotateRoot('prepare');
      assert.ok(prepared.ok, prepared.ok ? '' : prepared.error.message);
      assert.equal(JSON.parse(readFileSync(join(stateDir, 'root-2-key.pkcs11.json'), 'utf8')).keyLabel, 'mesh-root-root-2');
      assert.deepEqual(pkcs11KeyExists({ ...ref, keyLabel: 'mesh-root-root-2' }), { ok: true, value: true });
      for (const e of all) await eventually(async () => (await trustedCaCount(e)) === 2, { description: `${e.name} to trust both roots` });
      await moreTraffic('prepare');

      const before = new Map(await Promise.all(all.map(async (e) => [e.name, (await leafSerials(e))[0]] as const)));
      const activated = await mesh.mp.ca.rotateRoot('activate');
      assert.ok(activated.ok, activated.ok ? '' : activated.error.message);
      for (const e of all) {
        await eventually(async () => !(await leafSerials(e)).includes(before.get(e.name)!), {
          description: `${e.name} to get an SVID of the new root`,
        });
      }
      await moreTraffic('activate');
      // The sidecars' new chains verify to the new root, whose key is the token's second key.
      const [, newRootPem] = mesh.mp.ca.trustBundle().rootsPem;
      for (const e of all) {
        const v = opensslVerify(stateDir, await ownChainPems(e), newRootPem!);
        assert.equal(v.status, 0, v.output);
      }
      const early = await mesh.mp.ca.rotateRoot('retire');
      assert.ok(!early.ok, 'retire is refused while old-root SVIDs are outstanding');
      assert.match(early.error.message, /outstanding/);
      const retired = await mesh.mp.ca.rotateRoot('retire', { force: true });
      assert.ok(retired.ok, retired.ok ? '' : retired.error.message);
      for (const e of all) await eventually(async () => (await trustedCaCount(e)) === 1, { description: `${e.name} to drop the old root` });
      assert.equal(mesh.mp.ca.trustBundle().rootsPem[0], newRootPem);
      await moreTraffic('retire');
    } finally {
      await load.stop();
    }
    const counts = await load.stop();
    console.log(`      ${formatCounts('hsm root rotation load', counts)}`);
    assert.equal(counts.failed, 0, JSON.stringify(counts.failures));
    assert.ok(counts.ok >= 120);
    assert.ok(!existsSync(join(stateDir, 'root-1-key.pkcs11.json')) && !existsSync(join(stateDir, 'root-1-cert.pem')));
    // The retired root's key stays in the token for the operator to destroy.
    assert.deepEqual(pkcs11KeyExists(ref), { ok: true, value: true });
    assert.equal((await mesh.call(frontend, backendHost)).status, 200);
  });

  it('the gated driver (`ca rotate-root` without --phase) rotates again through the server holding the token: root-3 in the token', async () => {
    const load = startLoad({
      host: frontend.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: backendHost,
      concurrency: 2,
      maxDurationMs: 90_000,
      pauseMs: 10,
    });
    let out: string;
    try {
      // The CLI needs no token flags here: it drives the running control plane, which holds the token session.
      out = await runMeshpilotAsync(['ca', 'rotate-root', '--state-dir', stateDir, '--timeout', '20s', '--force-retire']);
    } finally {
      await load.stop();
    }
    assert.match(out, /prepare: done\n/);
    assert.match(out, /activate: done\n/);
    assert.match(out, /retire: done\nroot rotation complete\n$/);
    for (const e of all) await eventually(async () => (await trustedCaCount(e)) === 1, { description: `${e.name} to drop root-2` });
    assert.equal(JSON.parse(readFileSync(join(stateDir, 'root-3-key.pkcs11.json'), 'utf8')).keyLabel, 'mesh-root-root-3');
    assert.ok(!existsSync(join(stateDir, 'root-2-key.pkcs11.json')));
    const counts = await load.stop();
    console.log(`      ${formatCounts('hsm gated root rotation load', counts)}`);
    assert.equal(counts.failed, 0, JSON.stringify(counts.failures));
    assert.ok(counts.ok > 0);
    const [rootPem] = mesh.mp.ca.trustBundle().rootsPem;
    for (const e of all) {
      const v = opensslVerify(stateDir, await ownChainPems(e), rootPem!);
      assert.equal(v.status, 0, v.output);
    }
  });
});
