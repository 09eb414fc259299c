// Root rotation under load with real Envoy: prepare (both roots trusted), activate (new
// SVIDs under the new root, pushed everywhere), retire (old root leaves the bundle),
// each step a `meshpilot ca rotate-root` against the running control plane; zero failed
// requests; afterwards an SVID of the retired root is refused.
import assert from 'node:assert/strict';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { eventually } from './harness/index.js';
import { leafSerials, trustedCaCount } from './kit/certs.js';
import { formatCounts, startLoad } from './kit/load.js';
import { backend, backendHost, frontend, photoAppConfig, SERVICE_PORT } from './kit/photo-app.js';
import { startProcessMesh, type ProcessMesh } from './kit/process-mesh.js';
import { runMeshpilotAsync } from './kit/processes.js';
import { mtlsGetOnce } from './kit/tls-client.js';

describe('root rotation under load with real Envoy', function () {
  this.timeout(120_000);
  let mesh: ProcessMesh;

  before(async () => {
    mesh = await startProcessMesh(
      'rootrot',
      { 'mesh.yaml': photoAppConfig((y) => y.replace('  trustDomain: cluster.local', '  trustDomain: cluster.local\n  certTtl: 30s')) },
      [frontend, backend],
    );
  });
  afterEach(function () {
    mesh.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
  });

  it('prepares, activates and retires a new root with zero failed requests', async () => {
    const all = [...mesh.sidecars.values()];
    await eventually(() => sidecarsCall(), { description: 'first request' });
    // An SVID of the old root held outside the mesh, to show it stops working once the root is retired.
    const { cert: oldSvid } = await mesh.issue('photo-ns', 'photo-frontend');
    assert.equal(await mtlsGetOnce(backend.address, SERVICE_PORT, oldSvid), 200);

    const load = startLoad({
      host: frontend.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: backendHost,
      concurrency: 2,
      maxDurationMs: 90_000,
      pauseMs: 10,
    });
    await runMeshpilotAsync(['ca', 'rotate-root', '--state-dir', mesh.stateDir, '--phase', 'prepare']);
    for (const e of all) await eventually(async () => (await trustedCaCount(e)) === 2, { description: `${e.name} to trust both roots` });

    const before = new Map(await Promise.all(all.map(async (e) => [e.name, (await leafSerials(e))[0]] as const)));
    await runMeshpilotAsync(['ca', 'rotate-root', '--state-dir', mesh.stateDir, '--phase', 'activate']);
    for (const e of all) {
      await eventually(async () => !(await leafSerials(e)).includes(before.get(e.name)!), {
        description: `${e.name} to get an SVID of the new root`,
      });
    }

    // Retiring too early is refused: SVIDs of the old root are still valid.
    await assert.rejects(
      runMeshpilotAsync(['ca', 'rotate-root', '--state-dir', mesh.stateDir, '--phase', 'retire']),
      /still|outstanding|valid/i,
    );
    // Every sidecar now holds a new-root SVID; the operator retires, accepting that the stray old SVID stops working.
    await runMeshpilotAsync(['ca', 'rotate-root', '--state-dir', mesh.stateDir, '--phase', 'retire', '--force']);
    for (const e of all) await eventually(async () => (await trustedCaCount(e)) === 1, { description: `${e.name} to drop the old root` });
    await eventually(async () => (await mtlsGetOnce(backend.address, SERVICE_PORT, oldSvid)) !== 200, {
      timeoutMs: 5_000,
      description: 'an SVID of the retired root to be refused',
    });
    const counts = await load.stop();
    console.log(`      ${formatCounts('root rotation load', counts)}`);
    assert.equal(counts.failed, 0, JSON.stringify(counts.failures));
    assert.ok(counts.ok > 50);
    assert.ok(all.every((e) => e.running));
  });

  async function sidecarsCall(): Promise<boolean> {
    const { httpRequest } = await import('./harness/index.js');
    return (
      (await httpRequest({ host: frontend.address, port: OUTBOUND_HTTP_PORT, path: '/', headers: { host: backendHost } })).status === 200
    );
  }
});
