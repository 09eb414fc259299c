// `meshpilot mtls report` on the photo app with real Envoy sidecars: every client → service pair
// is auto mTLS with the SAN matcher secure naming expects, ACKed by the client, toward servers
// holding a current SVID they ACKed. Then secure naming is broken on purpose: with the frontend's
// Envoy frozen (SIGSTOP, the test hook), a second service account joins photo-backend, so the
// frontend's new CDS (two expected IDs) is pushed but not ACKed and a server has no sidecar; the
// pair is flagged, and clears once the frontend ACKs and the extra workload is gone.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { registerMtlsCommand } from '../src/cli/mtls-command.js';
import type { MtlsPair } from '../src/observability/index.js';
import { eventually, type EnvoyProcess } from './harness/index.js';
import { startMesh, type TestMesh } from './kit/mesh.js';
import {
  backend,
  backendHost,
  datastore,
  datastoreHost,
  frontend,
  ids,
  loopbackAddress,
  photoAppConfig,
  photoAppPolicy,
} from './kit/photo-app.js';

const BACKEND_HOST = 'photo-backend.photo-ns.svc.cluster.local';
const V2_ID = 'spiffe://cluster.local/ns/photo-ns/sa/photo-backend-v2';
const V2 = `---
apiVersion: v1
kind: ServiceAccount
metadata: { name: photo-backend-v2, namespace: photo-ns }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: photo-backend-v2, namespace: photo-ns }
spec:
  address: ${loopbackAddress(16)}
  serviceAccount: photo-backend-v2
  labels: { app: photo-backend }
`;

async function report(stateDir: string, ...args: string[]): Promise<{ rows: MtlsPair[]; text: string; exitCode: number }> {
  let out = '';
  const program = new Command('meshpilot').exitOverride();
  const mtls = registerMtlsCommand(program, { write: (s) => (out += s) });
  for (const c of mtls.commands) c.exitOverride();
  const saved = process.exitCode;
  try {
    await program.parseAsync(['mtls', 'report', '--state-dir', stateDir, '-o', 'json', ...args], { from: 'user' });
    const rows = JSON.parse(out) as MtlsPair[];
    out = '';
    await program.parseAsync(['mtls', 'report', '--state-dir', stateDir, ...args], { from: 'user' });
    return { rows, text: out, exitCode: Number(process.exitCode ?? 0) };
  } catch (e) {
    if (e instanceof CommanderError) throw new Error(`mtls report failed: ${e.message}`, { cause: e });
    throw e;
  } finally {
    process.exitCode = saved;
  }
}

describe('meshpilot mtls report with real Envoy sidecars', function () {
  this.timeout(90_000);
  let mesh: TestMesh;
  let stateDir: string;
  const sidecars = new Map<string, EnvoyProcess>();

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'mtls-report-state-'));
    mesh = await startMesh(
      { 'mesh.yaml': photoAppConfig(), 'policy.yaml': photoAppPolicy() },
      { apps: [frontend, backend, datastore], stateDir, adminPort: 0 },
    );
    await Promise.all([frontend, backend, datastore].map(async (w) => sidecars.set(w.name, await mesh.startSidecar(w))));
  });
  afterEach(function () {
    mesh.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    const f = sidecars.get(frontend.name);
    if (f?.running) process.kill(f.pid, 'SIGCONT');
    await mesh?.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('every pair is mTLS with the expected SPIFFE IDs, pushed and ACKed on both sides', async () => {
    // Traffic first: every hop works over mTLS before the report is read.
    for (const [from, host] of [
      [frontend, backendHost],
      [backend, datastoreHost],
    ] as const)
      await eventually(async () => {
        const res = await mesh.call(from, host, '/');
        if (res.status !== 200) throw new Error(`${from.name} -> ${host}: ${res.status}`);
      });
    const r = await eventually(async () => {
      const x = await report(stateDir);
      if (x.rows.some((p) => p.problems.length > 0)) throw new Error(x.text);
      return x;
    });
    assert.equal(r.exitCode, 0);
    assert.equal(r.rows.length, 6, r.text); // 3 clients × 3 services, minus each calling itself
    for (const p of r.rows) {
      assert.equal(p.clientTls, 'auto mTLS');
      assert.deepEqual(p.pushedSans, p.expectedIds);
      assert.equal(p.cdsAcked, true);
      for (const s of p.servers) assert.ok(s.serial && s.sdsAcked, JSON.stringify(s));
    }
    const fb = r.rows.find((p) => p.client === 'photo-ns/photo-frontend' && p.service === BACKEND_HOST);
    assert.deepEqual(fb?.pushedSans, [ids.backend]);
    const only = await report(stateDir, '--from', 'photo-ns/photo-frontend', '--to', 'photo-backend.photo-ns');
    assert.equal(only.rows.length, 1);
    assert.match(only.text, /^OK {3}photo-ns\/photo-frontend -> photo-backend\.photo-ns\.svc\.cluster\.local:9080\n/);
  });

  it('flags a pair whose new SAN list is pushed but not ACKed, and whose new server has no sidecar', async () => {
    const f = sidecars.get(frontend.name)!;
    process.kill(f.pid, 'SIGSTOP');
    try {
      mesh.writeConfig('v2.yaml', V2);
      const r = await eventually(async () => {
        const x = await report(stateDir, '--from', 'photo-ns/photo-frontend', '--to', BACKEND_HOST);
        if (!x.rows[0]?.pushedSans.includes(V2_ID)) throw new Error(x.text);
        return x;
      });
      assert.equal(r.exitCode, 1);
      const p = r.rows[0]!;
      assert.deepEqual(p.expectedIds, [ids.backend, V2_ID].sort());
      assert.equal(p.cdsAcked, false);
      assert.ok(p.problems.includes('client has not ACKed its current CDS'), r.text);
      // v2 has no tlsMode label: auto mTLS would send it plaintext, and the mesh is STRICT.
      assert.equal(p.clientTls, 'auto mTLS, plaintext to endpoints without a sidecar');
      assert.ok(p.problems.includes('plaintext toward photo-ns/photo-backend-v2 (no sidecar label) whose port is STRICT'), r.text);
      assert.ok(p.problems.includes('server photo-ns/photo-backend-v2 has no connected sidecar'), r.text);
      assert.match(r.text, /^FAIL photo-ns\/photo-frontend -> /);
    } finally {
      process.kill(f.pid, 'SIGCONT');
    }
    const acked = await eventually(async () => {
      const x = await report(stateDir, '--from', 'photo-ns/photo-frontend', '--to', BACKEND_HOST);
      if (!x.rows[0]?.cdsAcked) throw new Error(x.text);
      return x;
    });
    assert.deepEqual(acked.rows[0]!.problems, [
      'plaintext toward photo-ns/photo-backend-v2 (no sidecar label) whose port is STRICT',
      'server photo-ns/photo-backend-v2 has no connected sidecar',
    ]);
    mesh.writeConfig('v2.yaml', '');
    await eventually(async () => {
      const x = await report(stateDir);
      if (x.exitCode !== 0) throw new Error(x.text);
    });
  });
});
