// The photo app with its CA root key in a SoftHSM2 token (issue 18 item 5), with real Envoy:
// SVIDs are signed in the token and sidecars talk mTLS with them; when the token goes away,
// the CSR service answers UNAVAILABLE and SDS issuance waits while existing certificates keep
// serving; when it comes back, issuance resumes and a sidecar that was waiting gets its SVID.
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requestCertificate } from '../src/agent/ca-client.js';
import { generateKeyPair, generatePkcs11Key, type Pkcs11KeyRef } from '../src/ca/index.js';
import { createSoftHsm, type SoftHsm } from '../src/ca/softhsm-kit.js';
import { makeTestCa, opensslVerify } from '../src/ca/testing.js';
import { makeCsr } from '../src/csr/index.js';
import { eventually, type EnvoyProcess } from './harness/index.js';
import { ownChainPems } from './kit/certs.js';
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
