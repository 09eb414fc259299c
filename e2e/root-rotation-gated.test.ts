// The gated root rotation under load with real Envoy: `meshpilot ca rotate-root` without --phase
// prepares, waits for every proxy to ACK both roots, activates, waits for every workload's new
// SVID to be ACKed, and retires. The first run stops at retire (the sidecars' previous SVIDs of
// the old root are still valid); the second run resumes from the phase the CA reports and, with
// --force-retire, completes. Zero failed requests throughout.
import assert from 'node:assert/strict';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { eventually, httpRequest } from './harness/index.js';
import { trustedCaCount } from './kit/certs.js';
import { formatCounts, startLoad } from './kit/load.js';
import { backend, backendHost, frontend, photoAppConfig } from './kit/photo-app.js';
import { startProcessMesh, type ProcessMesh } from './kit/process-mesh.js';
import { runMeshpilotAsync } from './kit/processes.js';

describe('gated root rotation under load with real Envoy', function () {
  this.timeout(120_000);
  let mesh: ProcessMesh;

  before(async () => {
    mesh = await startProcessMesh(
      'rootgate',
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

  it('runs every phase gated on ACKs, stops at a refused retire, resumes, and drops no request', async () => {
    const all = [...mesh.sidecars.values()];
    await eventually(
      async () =>
        (await httpRequest({ host: frontend.address, port: OUTBOUND_HTTP_PORT, path: '/', headers: { host: backendHost } })).status === 200,
      { description: 'first request' },
    );
    const load = startLoad({
      host: frontend.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: backendHost,
      concurrency: 2,
      maxDurationMs: 90_000,
      pauseMs: 10,
    });

    // Retire is refused: the SVIDs the sidecars held before activation are unexpired.
    await assert.rejects(runMeshpilotAsync(['ca', 'rotate-root', '--state-dir', mesh.stateDir, '--timeout', '20s']), /exited 1/);
    for (const e of all) assert.equal(await trustedCaCount(e), 2, `${e.name} trusts both roots while the old one is kept`);

    const out = await runMeshpilotAsync(['ca', 'rotate-root', '--state-dir', mesh.stateDir, '--timeout', '20s', '--force-retire']);
    assert.match(out, /^root rotation phase: activated\n/);
    assert.match(
      out,
      /waiting until every connected proxy ACKed its SVID re-issued under the new root\.\.\.\n {2}2 proxies ACKed in \d+ ms\n/,
    );
    assert.match(out, /retire: done\nroot rotation complete\n$/);
    for (const e of all) await eventually(async () => (await trustedCaCount(e)) === 1, { description: `${e.name} to drop the old root` });

    const counts = await load.stop();
    console.log(`      ${formatCounts('gated root rotation load', counts)}`);
    console.log(out.replace(/^/gm, '      '));
    assert.equal(counts.failed, 0, JSON.stringify(counts.failures));
    assert.ok(counts.ok > 50);
  });
});
