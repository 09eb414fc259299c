// Root rotation under load with real Envoy: prepare (both roots trusted), activate (new
// SVIDs under the new root, pushed everywhere), retire (old root leaves the bundle),
// each step a `meshpilot ca rotate-root` against the running control plane; zero failed
// requests; afterwards an SVID of the retired root is refused.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { envoyPool, eventually, startHttpUpstream, type EnvoyProcess, type HttpUpstream } from './harness/index.js';
import { leafSerials, trustedCaCount } from './kit/certs.js';
import { formatCounts, startLoad } from './kit/load.js';
import { APP_PORT, backend, backendHost, frontend, photoAppConfig, SERVICE_PORT } from './kit/photo-app.js';
import { controlPlaneProcess, runMeshpilot, runMeshpilotAsync, type ControlPlaneProcess } from './kit/processes.js';
import { mtlsGetOnce, readIssued } from './kit/tls-client.js';

describe('root rotation under load with real Envoy', function () {
  this.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-rootrot-'));
  const stateDir = join(dir, 'state');
  const configDir = join(dir, 'config');
  const envoys = envoyPool();
  const apps: HttpUpstream[] = [];
  let cp: ControlPlaneProcess;
  const sidecars = new Map<string, EnvoyProcess>();

  before(async () => {
    mkdirSync(configDir);
    writeFileSync(
      join(configDir, 'mesh.yaml'),
      photoAppConfig((y) => y.replace('  trustDomain: cluster.local', '  trustDomain: cluster.local\n  certTtl: 30s')),
    );
    cp = await controlPlaneProcess({ configDir, stateDir });
    await cp.start();
    for (const w of [frontend, backend]) {
      apps.push(await startHttpUpstream({ host: w.address, port: APP_PORT, name: w.name }));
      const args = ['bootstrap', '--state-dir', stateDir, '--namespace', w.namespace, '--workload', w.name, '--service-account', w.name];
      args.push('--address', w.address, '--xds-address', `127.0.0.1:${cp.xdsPort}`);
      sidecars.set(w.name, await envoys.start({ name: `${w.name}-sidecar`, bootstrap: JSON.parse(runMeshpilot(args)) as object }));
    }
  });
  afterEach(function () {
    envoys.dumpLogsIfFailed(this.currentTest);
    if (this.currentTest?.state === 'failed') console.error(`--- meshpilot ---\n${cp?.current().logs(60)}`);
  });
  after(async () => {
    await envoys.stopAll();
    await cp?.current().stop();
    await Promise.all(apps.map((a) => a.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('prepares, activates and retires a new root with zero failed requests', async () => {
    const all = [...sidecars.values()];
    await eventually(() => sidecarsCall(), { description: 'first request' });
    // An SVID of the old root held outside the mesh, to show it stops working once the root is retired.
    const out = join(dir, 'old-root-svid');
    await runMeshpilotAsync([
      'ca',
      'issue',
      '--state-dir',
      stateDir,
      '--namespace',
      'photo-ns',
      '--service-account',
      'photo-frontend',
      '--out',
      out,
      '--ttl',
      '1h',
    ]);
    const oldSvid = readIssued(out);
    assert.equal(await mtlsGetOnce(backend.address, SERVICE_PORT, oldSvid), 200);

    const load = startLoad({
      host: frontend.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: backendHost,
      concurrency: 2,
      maxDurationMs: 90_000,
      pauseMs: 10,
    });
    await runMeshpilotAsync(['ca', 'rotate-root', '--state-dir', stateDir, '--phase', 'prepare']);
    for (const e of all) await eventually(async () => (await trustedCaCount(e)) === 2, { description: `${e.name} to trust both roots` });

    const before = new Map(await Promise.all(all.map(async (e) => [e.name, (await leafSerials(e))[0]] as const)));
    await runMeshpilotAsync(['ca', 'rotate-root', '--state-dir', stateDir, '--phase', 'activate']);
    for (const e of all) {
      await eventually(async () => !(await leafSerials(e)).includes(before.get(e.name)!), {
        description: `${e.name} to get an SVID of the new root`,
      });
    }

    // Retiring too early is refused: SVIDs of the old root are still valid.
    await assert.rejects(
      runMeshpilotAsync(['ca', 'rotate-root', '--state-dir', stateDir, '--phase', 'retire']),
      /still|outstanding|valid/i,
    );
    // Every sidecar now holds a new-root SVID; the operator retires, accepting that the stray old SVID stops working.
    await runMeshpilotAsync(['ca', 'rotate-root', '--state-dir', stateDir, '--phase', 'retire', '--force']);
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
