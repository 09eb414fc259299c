// The gated root rotation of three `meshpilot serve` replicas sharing one CA in a three-member
// etcd, with a sidecar on each: `meshpilot ca rotate-root` asks one replica, the rotation is
// recorded in etcd and driven by the leader of the singleton election, its gates wait for the
// proxies of every replica. A sidecar that cannot ACK (SIGSTOPped) holds the bundle gate; the
// leader is SIGKILLed there; another replica wins the election and finishes the rotation, and a
// second operator is refused meanwhile, naming the rotation. Zero failed requests throughout.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callAdmin, findAdminEndpoint } from '../src/admin/index.js';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { startEtcdCluster, type EtcdCluster } from '../src/store/etcd-kit.js';
import {
  envoyPool,
  eventually,
  httpRequest,
  startHttpUpstream,
  type EnvoyPool,
  type EnvoyProcess,
  type HttpUpstream,
} from './harness/index.js';
import { trustedCaCount } from './kit/certs.js';
import { formatCounts, startLoad } from './kit/load.js';
import { APP_PORT, backend, backendHost, datastore, frontend, photoAppConfig } from './kit/photo-app.js';
import type { TestWorkload } from './kit/mesh.js';
import { controlPlaneProcess, runMeshpilot, runMeshpilotAsync, startMeshpilotProcess, type ControlPlaneProcess } from './kit/processes.js';
import { connectedReplicaPort } from './kit/replicas.js';

interface RotationBody {
  rotation?: { id: string; state: string; step: string; driver?: string; message?: string };
  reports: { replica: string; stage: string; proxies: number; missing: { nodeId: string; reason: string }[] }[];
}

describe('gated root rotation of three replicas on etcd, leader SIGKILLed mid-rotation (real Envoy)', function () {
  this.timeout(300_000);
  let etcd: EtcdCluster;
  let dir: string;
  const cps: ControlPlaneProcess[] = [];
  let envoys: EnvoyPool;
  const apps: HttpUpstream[] = [];
  const sidecars = new Map<string, EnvoyProcess>();
  let storeArgs: string[];
  let stopped: EnvoyProcess | undefined;

  const rotationOf = async (cp: ControlPlaneProcess): Promise<RotationBody> => {
    const r = await callAdmin(findAdminEndpoint(cp.stateDir)!, 'GET', '/ca/rotation');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as RotationBody;
  };
  const leads = async (cp: ControlPlaneProcess): Promise<boolean> => {
    if (cp.current().proc.exitCode !== null || cp.current().proc.signalCode !== null) return false;
    const text = await (await fetch(`http://127.0.0.1:${cp.adminPort}/metrics`)).text();
    return /^meshpilot_ca_singleton_leader 1$/m.test(text);
  };
  const leaderOf = async (among: readonly ControlPlaneProcess[]): Promise<ControlPlaneProcess> =>
    eventually(
      async () => {
        const l = [];
        for (const cp of among) if (await leads(cp)) l.push(cp);
        return l.length === 1 ? l[0]! : false;
      },
      { timeoutMs: 40_000, description: 'exactly one replica leads the CA singletons' },
    );

  before(async () => {
    etcd = await startEtcdCluster({ members: 3 });
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-rotlead-'));
    const configDir = join(dir, 'config');
    mkdirSync(configDir);
    // Short SVIDs, as in the single-server gated rotation: workloads re-issue often.
    writeFileSync(
      join(configDir, 'mesh.yaml'),
      photoAppConfig((y) => y.replace('  trustDomain: cluster.local', '  trustDomain: cluster.local\n  certTtl: 30s')),
    );
    const keyFile = join(dir, 'ca-store.key');
    writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
    storeArgs = [
      '--ca-store', 'etcd', '--ca-store-key', keyFile,
      '--etcd-endpoints', etcd.endpoints.join(','),
      '--etcd-ca', etcd.tls.caFile, '--etcd-cert', etcd.tls.certFile, '--etcd-key', etcd.tls.keyFile,
    ]; // prettier-ignore
    for (const name of ['a', 'b', 'c'])
      cps.push(await controlPlaneProcess({ configDir, stateDir: join(dir, `replica-${name}`), extraArgs: storeArgs }));
    await Promise.all(cps.map((cp) => cp.start()));
    envoys = envoyPool();
    // A sidecar on each replica (listed first), the others after it to fail over to.
    const order = (i: number) => [0, 1, 2].map((k) => `127.0.0.1:${cps[(i + k) % 3]!.xdsPort}`).join(',');
    for (const [i, w] of ([frontend, backend, datastore] as TestWorkload[]).entries()) {
      apps.push(await startHttpUpstream({ host: w.address, port: APP_PORT, name: w.name }));
      const bootstrap = JSON.parse(
        runMeshpilot([
          'bootstrap', ...storeArgs,
          '--namespace', w.namespace, '--workload', w.name, '--service-account', w.serviceAccount ?? w.name,
          '--address', w.address, '--control-plane', order(i),
        ]), // prettier-ignore
      ) as Record<string, unknown>;
      sidecars.set(w.name, await envoys.start({ name: `${w.name}-sidecar`, bootstrap }));
    }
  });
  afterEach(function () {
    envoys?.dumpLogsIfFailed(this.currentTest);
    if (this.currentTest?.state === 'failed')
      for (const [i, cp] of cps.entries()) console.error(`--- replica ${'abc'[i]} ---\n${cp.current()?.logs(60)}`);
  });
  after(async () => {
    if (stopped) process.kill(stopped.pid, 'SIGCONT');
    await envoys?.stopAll();
    for (const cp of cps) await cp.current()?.stop();
    await Promise.all(apps.map((x) => x.close()));
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is driven by the leader, gated on every replica, resumed by the next leader after a SIGKILL, with zero failed requests', async () => {
    await eventually(
      async () =>
        (await httpRequest({ host: frontend.address, port: OUTBOUND_HTTP_PORT, path: '/', headers: { host: backendHost } })).status === 200,
      { timeoutMs: 30_000, description: 'first request frontend → backend' },
    );
    const ports = new Map<string, number | undefined>();
    for (const [name, e] of sidecars) ports.set(name, await connectedReplicaPort(e));
    console.log(`      sidecars on replicas (xDS ports): ${[...ports].map(([n, p]) => `${n}→${p}`).join(', ')}`);
    const leader = await leaderOf(cps);
    const followers = cps.filter((cp) => cp !== leader);
    const load = startLoad({
      host: frontend.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: backendHost,
      concurrency: 2,
      maxDurationMs: 200_000,
      pauseMs: 10,
    });
    // The datastore sidecar (not on the request path) is frozen: it cannot ACK, so the bundle gate waits for it.
    stopped = sidecars.get(datastore.name)!;
    process.kill(stopped.pid, 'SIGSTOP');
    const asked = followers[0]!;
    const cli = startMeshpilotProcess('rotate-root', [
      'ca', 'rotate-root', '--state-dir', asked.stateDir, '--timeout', '120s', '--force-retire',
    ]); // prettier-ignore
    const atGate = await eventually(
      async () => {
        const v = await rotationOf(asked);
        const waiting = v.reports.flatMap((r) => r.missing).some((m) => m.nodeId.includes(datastore.name));
        // Every replica has reported on this gate (each publishes within a round of seeing the step).
        const all = v.reports.filter((r) => r.stage === 'bundle').length === 3;
        return v.rotation?.step === 'bundle' && v.rotation.state === 'running' && waiting && all ? v : false;
      },
      { timeoutMs: 30_000, description: 'the rotation waits at the bundle gate for the frozen sidecar' },
    );
    const firstDriver = atGate.rotation!.driver!;
    assert.match(firstDriver, new RegExp(`:${leader.xdsPort}$`), 'the leader drives it, not the replica asked');
    assert.equal(
      atGate.reports.reduce((n, r) => n + r.proxies, 0),
      3,
      'each sidecar is counted once, by the replica it is connected to',
    );

    // A second operator, through another replica: refused, naming the rotation in progress.
    await assert.rejects(
      runMeshpilotAsync(['ca', 'rotate-root', '--state-dir', followers[1]!.stateDir, '--timeout', '10s']),
      new RegExp(`rotate-root refused: root rotation ${atGate.rotation!.id} is in progress \\(step bundle`),
    );

    const killed = await leader.current().stop('SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    const next = await leaderOf(followers);
    process.kill(stopped.pid, 'SIGCONT');
    stopped = undefined;

    const exit = await cli.exited;
    const out = cli.logs();
    console.log(out.replace(/^/gm, '      '));
    assert.equal(exit.code, 0, out);
    assert.match(out, /root rotation complete/);
    const done = await rotationOf(next);
    assert.equal(done.rotation?.state, 'complete');
    assert.match(done.rotation!.driver!, new RegExp(`:${next.xdsPort}$`), 'the next leader finished it');
    assert.notEqual(done.rotation!.driver, firstDriver);
    assert.match(out, new RegExp(`driven by [^)]*:${next.xdsPort}\\)`));

    for (const [name, e] of sidecars)
      await eventually(async () => (await trustedCaCount(e)) === 1, { timeoutMs: 30_000, description: `${name} to drop the old root` });
    const after = await httpRequest({ host: frontend.address, port: OUTBOUND_HTTP_PORT, path: '/after', headers: { host: backendHost } });
    assert.equal(after.status, 200);
    const counts = await load.stop();
    console.log(`      ${formatCounts('rotation across replicas, leader killed', counts)}`);
    assert.equal(counts.failed, 0, JSON.stringify(counts.failures));
    assert.ok(counts.ok > 50);
  });
});
