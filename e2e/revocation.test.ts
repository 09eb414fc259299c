// DESIGN.md scenario 4 with real Envoy and the real CLI: `meshpilot ca revoke` on a
// running control plane pushes the new CRL to every proxy and a fresh SVID to the
// holder; peers refuse new connections presented with the revoked certificate within
// seconds, with no Envoy restart, and legitimate traffic never fails.
import assert from 'node:assert/strict';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { eventually } from './harness/index.js';
import { leafSerials } from './kit/certs.js';
import { formatCounts, startLoad } from './kit/load.js';
import { backend, backendHost, frontend, photoAppConfig, SERVICE_PORT } from './kit/photo-app.js';
import { startProcessMesh, type ProcessMesh } from './kit/process-mesh.js';
import { runMeshpilot, runMeshpilotAsync } from './kit/processes.js';
import { mtlsGetOnce, openMtls } from './kit/tls-client.js';

describe('revocation with real Envoy (scenario 4)', function () {
  this.timeout(120_000);
  let mesh: ProcessMesh;

  before(async () => {
    mesh = await startProcessMesh('revoke', { 'mesh.yaml': photoAppConfig() }, [frontend, backend]);
  });
  afterEach(function () {
    mesh.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
  });

  it('refuses a revoked certificate on new connections within 5 s, keeps old connections, and never fails legitimate traffic', async () => {
    const load = startLoad({
      host: frontend.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: backendHost,
      concurrency: 2,
      maxDurationMs: 60_000,
      pauseMs: 10,
    });
    // A certificate for photo-frontend's identity, issued through the running control plane.
    const { serial, cert } = await mesh.issue('photo-ns', 'photo-frontend');
    assert.equal(await mtlsGetOnce(backend.address, SERVICE_PORT, cert), 200, 'accepted before revocation');
    const old = await openMtls(backend.address, SERVICE_PORT, cert);
    assert.equal(await old.get('/before'), 200);

    const revokedAt = Date.now();
    const said = await runMeshpilotAsync(['ca', 'revoke', '--state-dir', mesh.stateDir, '--serial', serial]);
    assert.match(said, /via the running control plane/);
    await eventually(async () => (await mtlsGetOnce(backend.address, SERVICE_PORT, cert)) !== 200, {
      timeoutMs: 5_000,
      intervalMs: 50,
      description: 'new connections with the revoked certificate to be refused',
    });
    const refusedAfterMs = Date.now() - revokedAt;
    // A connection opened before the revocation: Envoy checks the CRL at the handshake only.
    const oldAfter = await old.get('/after').catch((e: Error) => e.message);
    old.close();
    console.log(
      `      revoked certificate refused on new connections ${refusedAfterMs} ms after 'meshpilot ca revoke'; a connection opened before answered ${oldAfter}`,
    );
    assert.ok(refusedAfterMs < 5_000);

    // Revoke photo-frontend's own current SVID: its sidecar gets a fresh one and keeps working.
    const fe = mesh.sidecars.get(frontend.name)!;
    const [current] = await leafSerials(fe);
    await runMeshpilotAsync(['ca', 'revoke', '--state-dir', mesh.stateDir, '--serial', current!]);
    await eventually(async () => !(await leafSerials(fe)).includes(current!), {
      timeoutMs: 5_000,
      description: 'the frontend sidecar to get a fresh SVID',
    });
    // New connections from the frontend use the new certificate and are accepted.
    const probe = await eventually(() => mtlsProbe(), { timeoutMs: 5_000, description: 'frontend → backend after its own revocation' });
    assert.equal(probe, 200);
    const counts = await load.stop();
    console.log(`      ${formatCounts('legitimate load', counts)}`);
    assert.equal(counts.failed, 0, JSON.stringify(counts.failures));
    assert.ok(counts.ok > 50, 'the load kept flowing');
    assert.ok(fe.running && mesh.sidecars.get(backend.name)!.running, 'no Envoy restarted');
    assert.match(runMeshpilot(['ca', 'show', '--state-dir', mesh.stateDir]), new RegExp(serial));
  });

  it('refuses to revoke an unknown serial with a clear error', () => {
    assert.throws(
      () => runMeshpilot(['ca', 'revoke', '--state-dir', mesh.stateDir, '--serial', 'abcdef0123']),
      /no unexpired certificate with serial abcdef0123/,
    );
  });

  async function mtlsProbe(): Promise<number> {
    const { httpRequest } = await import('./harness/index.js');
    return (await httpRequest({ host: frontend.address, port: OUTBOUND_HTTP_PORT, path: '/probe', headers: { host: backendHost } })).status;
  }
});
