// SVID rotation with real Envoy: with a certificate lifetime of a few seconds, both
// sidecars get new certificates over SDS several times during a steady run of
// requests, without a restart and without a single failed request.
import assert from 'node:assert/strict';
import { eventually, type EnvoyProcess } from './harness/index.js';
import { leafSerials } from './kit/certs.js';
import { formatCounts, startLoad } from './kit/load.js';
import { startMesh, type TestMesh } from './kit/mesh.js';
import { backend, backendHost, frontend, photoAppConfig } from './kit/photo-app.js';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';

const TTL_S = 4;

describe('SVID rotation under load with real Envoy', function () {
  this.timeout(90_000);
  let mesh: TestMesh;
  let fe: EnvoyProcess;
  let be: EnvoyProcess;

  before(async () => {
    const config = photoAppConfig((y) =>
      y.replace('  trustDomain: cluster.local', `  trustDomain: cluster.local\n  certTtl: ${TTL_S}s\n  renewJitterFraction: 0.1`),
    );
    mesh = await startMesh({ 'mesh.yaml': config }, { apps: [frontend, backend] });
    // One side on incremental (delta) xDS, the other on state of the world: rotation works over both.
    [fe, be] = await Promise.all([mesh.startSidecar(frontend, { apiType: 'DELTA_GRPC' }), mesh.startSidecar(backend)]);
  });
  afterEach(function () {
    mesh.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
  });

  it('rotates both sides several times with zero failed requests', async () => {
    await eventually(() => mesh.call(frontend, backendHost).then((r) => r.status === 200), { description: 'first request' });
    const seen = { fe: new Set<string>(), be: new Set<string>() };
    const sample = async () => {
      for (const s of await leafSerials(fe)) seen.fe.add(s);
      for (const s of await leafSerials(be)) seen.be.add(s);
    };
    const load = startLoad({
      host: frontend.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: backendHost,
      concurrency: 4,
      maxDurationMs: 40_000,
    });
    // Sample until both sides have shown at least six certificates (five rotations), bounded by the load’s own time limit.
    await eventually(
      async () => {
        await sample();
        return seen.fe.size >= 6 && seen.be.size >= 6;
      },
      { timeoutMs: 35_000, intervalMs: 250, description: 'five rotations on both sides' },
    );
    const counts = await load.stop();
    console.log(`      ${formatCounts('rotation', counts)}; serials seen: frontend ${seen.fe.size}, backend ${seen.be.size}`);
    assert.ok(counts.ok > 100, 'requests flowed throughout');
    assert.equal(counts.failed, 0, JSON.stringify(counts.failures));
    assert.ok(fe.running && be.running, 'no Envoy restarted');
    // meshpilot issued each of those serials, as renewals.
    const renewals = mesh.logLines.filter((l) => l.msg === 'svid issued' && l.fields.reason === 'renewal').length;
    assert.ok(renewals >= 10, `renewals logged: ${renewals}`);
  });
});
