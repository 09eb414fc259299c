// Istio's plug-in CA with real Envoy: meshpilot signs as an intermediate under a root it
// does not hold; SVIDs carry the chain, peers verify it to the plug-in root, and a
// revocation (CRL of the intermediate, checked on the leaf) is enforced.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../src/ca/index.js';
import { makeTestCa, writePluginDir } from '../src/ca/testing.js';
import { mustSpiffeId } from '../src/identity/index.js';
import { unwrap } from '../src/lib/index.js';
import { eventually, type EnvoyProcess } from './harness/index.js';
import { ownChainPems } from './kit/certs.js';
import { startMesh, type TestMesh } from './kit/mesh.js';
import { backend, backendHost, frontend, ids, photoAppConfig, SERVICE_PORT, xfccUri } from './kit/photo-app.js';
import { mtlsGetOnce } from './kit/tls-client.js';

describe('plug-in CA (intermediate under an outside root) with real Envoy', function () {
  this.timeout(60_000);
  const pluginDir = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-plugin-'));
  const root = makeTestCa({ cn: 'outside root', now: Date.now() });
  const intermediate = makeTestCa({ cn: 'meshpilot intermediate', issuer: root, now: Date.now() });
  let mesh: TestMesh;
  let fe: EnvoyProcess;

  before(async () => {
    writePluginDir(pluginDir, root, intermediate);
    const config = photoAppConfig((y) =>
      y.replace('  trustDomain: cluster.local', `  trustDomain: cluster.local\n  caPluginDir: ${pluginDir}`),
    );
    mesh = await startMesh({ 'mesh.yaml': config }, { apps: [frontend, backend] });
    fe = await mesh.startSidecar(frontend);
    await mesh.startSidecar(backend);
  });
  afterEach(function () {
    mesh.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
    rmSync(pluginDir, { recursive: true, force: true });
  });

  it('issues SVIDs with the intermediate in the chain, trusted through the plug-in root', async () => {
    assert.equal(mesh.mp.ca.trustBundle().pem, root.pem, 'the bundle is the plug-in root');
    const res = await eventually(() => mesh.call(frontend, backendHost), { description: 'frontend → backend' });
    assert.equal(res.status, 200);
    assert.equal(xfccUri((res.json as { headers: Record<string, string> }).headers), ids.frontend);
    const chain = await ownChainPems(fe);
    assert.equal(chain.length, 2, 'leaf and intermediate');
    assert.match(new X509Certificate(chain[1]!).subject, /meshpilot intermediate/);
    assert.ok(new X509Certificate(chain[0]!).checkIssued(new X509Certificate(chain[1]!)));
  });

  it('enforces a revocation signed by the intermediate', async () => {
    const keys = generateKeyPair('ec-p256');
    const svid = unwrap(mesh.mp.ca.signSvid({ spiffeId: mustSpiffeId(ids.frontend), publicKey: keys.publicKey }));
    const cert = { key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), cert: svid.chainPem.join(''), ca: root.pem };
    assert.equal(await mtlsGetOnce(backend.address, SERVICE_PORT, cert), 200);
    unwrap(await mesh.mp.ca.revoke(svid.serialHex));
    await eventually(async () => (await mtlsGetOnce(backend.address, SERVICE_PORT, cert)) !== 200, {
      timeoutMs: 5_000,
      description: 'the revoked certificate to be refused',
    });
    assert.equal((await mesh.call(frontend, backendHost)).status, 200, 'the mesh keeps working');
  });
});
