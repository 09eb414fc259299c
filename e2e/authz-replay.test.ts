// `authz replay` against traffic recorded by real Envoy sidecars: MeshConfig accessLog: true makes
// each inbound sidecar write the JSON access log; the test replays what it recorded under a config
// with a new DENY policy, then applies that policy and checks the sidecars refuse exactly the
// requests the replay named (and still serve the others).
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replayAccessLog } from '../src/cli/authz-replay.js';
import { loadConfig } from '../src/config/index.js';
import { TypeUrl } from '../src/proto/index.js';
import { eventually, type EnvoyProcess } from './harness/index.js';
import { nodeIdOf, startMesh, type TestMesh } from './kit/mesh.js';
import { backend, backendHost, datastore, datastoreHost, frontend, photoAppConfig, photoAppPolicy } from './kit/photo-app.js';

const DENY_ADMIN = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: backend-deny-admin, namespace: photo-ns }
spec:
  selector: { matchLabels: { app: photo-backend } }
  action: DENY
  rules:
    - to: [{ operation: { paths: ['/admin/*'] } }]
`;

const withAccessLog = (y: string) => y.replace(/(\n {2}trustDomain: cluster\.local\n)/, '$1  accessLog: true\n');

/** The access log lines an Envoy wrote: its stdout JSON objects, apart from its own (bracketed) log lines. */
const accessLines = (e: EnvoyProcess) =>
  e
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{"'));

describe('authz replay of a log recorded by real Envoy sidecars', function () {
  this.timeout(90_000);
  let mesh: TestMesh;
  const sidecars = new Map<string, EnvoyProcess>();
  let proposedDir: string;

  before(async () => {
    mesh = await startMesh(
      { 'mesh.yaml': photoAppConfig(withAccessLog), 'policy.yaml': photoAppPolicy() },
      { apps: [frontend, backend, datastore] },
    );
    await Promise.all([frontend, backend, datastore].map(async (w) => sidecars.set(w.name, await mesh.startSidecar(w))));
    proposedDir = mkdtempSync(join(tmpdir(), 'replay-e2e-'));
    cpSync(mesh.configDir, proposedDir, { recursive: true });
    writeFileSync(join(proposedDir, 'deny-admin.yaml'), DENY_ADMIN);
  });
  afterEach(function () {
    mesh.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
    if (proposedDir) rmSync(proposedDir, { recursive: true, force: true });
  });

  it('names exactly the recorded requests the new DENY blocks, and the sidecars then block exactly those', async () => {
    const calls = [
      [frontend, backendHost, '/photos/1'],
      [frontend, backendHost, '/admin/users'],
      [frontend, backendHost, '/photos/admin'],
      [frontend, backendHost, '/admin/../admin/keys'],
      [backend, datastoreHost, '/admin/rows'],
      [frontend, datastoreHost, '/rows'],
    ] as const;
    const before = [];
    for (const [from, host, path] of calls)
      before.push((await eventually(() => mesh.call(from, host, path), { description: path })).status);
    assert.deepEqual(before, [200, 200, 200, 200, 200, 403]);

    // Envoy flushes file access logs on a timer (1 s by default), so wait for every line.
    const recorded = await eventually(
      () => {
        const lines = [...sidecars.values()].flatMap(accessLines);
        if (lines.length < calls.length) throw new Error(`${lines.length} access log lines so far`);
        return lines;
      },
      { description: 'access log lines', timeoutMs: 15_000 },
    );
    const loaded = await loadConfig([proposedDir]);
    assert.ok(loaded.model, JSON.stringify(loaded.diagnostics));
    const report = replayAccessLog(loaded.model, recorded);
    assert.deepEqual(report.malformed, []);
    assert.deepEqual(report.unplaced, []);
    assert.equal(report.evaluated, calls.length);
    assert.deepEqual(
      report.changed.map((c) => [c.request.destinationWorkload, c.request.path, c.request.recorded, c.proposed, c.decidedBy]).sort(),
      [
        // Envoy logs :path after normalization, as its RBAC filter saw it.
        ['photo-ns/photo-backend', '/admin/keys', 'allow', 'deny', 'photo-ns/backend-deny-admin rule 0'],
        ['photo-ns/photo-backend', '/admin/users', 'allow', 'deny', 'photo-ns/backend-deny-admin rule 0'],
      ],
    );
    // The refused frontend → datastore call was logged as an RBAC denial, with the caller's ID.
    const refused = recorded
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((o) => o['destination_workload'] === 'datastore-ns/datastore' && o['response_code'] === 403);
    assert.match(String(refused?.['response_code_details']), /^rbac_access_denied/);
    assert.equal(refused?.['source_principal'], 'spiffe://cluster.local/ns/photo-ns/sa/photo-frontend');

    const since = mesh.events.length;
    mesh.writeConfig('deny-admin.yaml', DENY_ADMIN);
    await mesh.waitForAck(nodeIdOf(backend), TypeUrl.Listener, since);
    const after = await eventually(
      async () => {
        const s = [];
        for (const [from, host, path] of calls) s.push((await mesh.call(from, host, path)).status);
        if (s[1] !== 403) throw new Error(`policy not in force yet: ${s.join(',')}`);
        return s;
      },
      { description: 'deny in force' },
    );
    assert.deepEqual(after, [200, 403, 200, 403, 200, 403]);
  });
});
