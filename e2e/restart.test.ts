// DESIGN.md scenario 7 with real Envoy: the control plane is killed hard while traffic
// flows; sidecars keep serving on their current config and SVIDs; restarted on the same
// state directory it resyncs every proxy with the same root and the same content
// versions; then a clean SIGTERM closes streams and leaves the state directory whole.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { eventually, type EnvoyProcess } from './harness/index.js';
import { formatCounts, startLoad } from './kit/load.js';
import { backend, backendHost, frontend, photoAppConfig } from './kit/photo-app.js';
import { startProcessMesh, type ProcessMesh } from './kit/process-mesh.js';
import { logEntries, type ControlPlaneProcess } from './kit/processes.js';

describe('control plane restart with real Envoy (scenario 7)', function () {
  this.timeout(120_000);
  let mesh: ProcessMesh;
  let cp: ControlPlaneProcess;
  let sidecars: EnvoyProcess[];

  before(async () => {
    mesh = await startProcessMesh('restart', { 'mesh.yaml': photoAppConfig() }, [frontend, backend]);
    cp = mesh.cp;
    sidecars = [...mesh.sidecars.values()];
  });
  afterEach(function () {
    mesh.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
  });

  const listenerVersions = async (e: EnvoyProcess) => {
    const dump = (await e.configDump('resource=dynamic_listeners')) as {
      configs?: { name: string; active_state?: { version_info?: string } }[];
    };
    return Object.fromEntries((dump.configs ?? []).map((c) => [c.name, c.active_state?.version_info]));
  };

  it('keeps serving through a hard kill and resyncs on restart, with the same root and versions', async () => {
    await eventually(
      async () => {
        const { httpRequest } = await import('./harness/index.js');
        return (
          (await httpRequest({ host: frontend.address, port: OUTBOUND_HTTP_PORT, path: '/', headers: { host: backendHost } })).status ===
          200
        );
      },
      { description: 'first request' },
    );
    const rootBefore = cp.rootPem();
    const versionsBefore = await Promise.all(sidecars.map(listenerVersions));
    const load = startLoad({
      host: frontend.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: backendHost,
      concurrency: 2,
      maxDurationMs: 60_000,
      pauseMs: 10,
    });

    const killed = await cp.current().stop('SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    for (const e of sidecars)
      await eventually(async () => (await e.stat('control_plane.connected_state')) === 0, { description: `${e.name} to notice` });
    const duringOutage = load.counts().ok;
    await eventually(() => load.counts().ok > duringOutage + 20, { description: 'traffic to keep flowing with the control plane down' });

    const second = await cp.start();
    for (const e of sidecars)
      await eventually(async () => (await e.stat('control_plane.connected_state')) === 1, {
        timeoutMs: 15_000,
        description: `${e.name} to reconnect`,
      });
    await eventually(() => logEntries(second.lines()).filter((l) => l.msg === 'proxy connected').length >= 2, {
      description: 'both proxies to resync',
    });
    const counts = await load.stop();
    console.log(`      ${formatCounts('restart load', counts)}`);
    assert.equal(counts.failed, 0, JSON.stringify(counts.failures));
    assert.equal(cp.rootPem(), rootBefore, 'same root: no trust break');
    // Versions are content hashes: unchanged listeners keep their versions across the restart.
    assert.deepEqual(await Promise.all(sidecars.map(listenerVersions)), versionsBefore);
    assert.ok(sidecars.every((e) => e.running));
  });

  it('stops cleanly on SIGTERM: exit 0, admin endpoint withdrawn, state directory whole', async () => {
    const r = await cp.current().stop('SIGTERM');
    assert.equal(r.code, 0);
    assert.ok(!existsSync(join(mesh.stateDir, 'admin.json')), 'admin.json removed');
    assert.doesNotThrow(() => JSON.parse(readFileSync(join(mesh.stateDir, 'ca.json'), 'utf8')));
    assert.ok(logEntries(cp.current().lines()).some((l) => l.msg === 'shutting down'));
    // And it comes back on the same state.
    await cp.start();
    for (const e of sidecars)
      await eventually(async () => (await e.stat('control_plane.connected_state')) === 1, {
        timeoutMs: 15_000,
        description: `${e.name} to reconnect`,
      });
  });
});
