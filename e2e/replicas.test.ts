// DESIGN.md scenario 10 with real Envoy and a real etcd (three members, TLS with client
// certificates): three `meshpilot serve --config-store etcd --ca-store etcd` replicas serve the
// photo app, photo-frontend's sidecar on replica A, photo-backend's on B, datastore's on C.
// A policy written with `meshpilot apply` reaches the sidecars on B and C; a certificate revoked
// through B is refused at the sidecars on A and C within 5 s; the replica a sidecar uses is
// SIGKILLed under load and the sidecar resyncs from another without a failed request; one etcd
// member dies and the mesh keeps working and taking changes; all of etcd dies and every replica
// keeps serving its last config, says so, and recovers.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { formatCounts, startLoad } from './kit/load.js';
import {
  APP_PORT,
  backend,
  backendHost,
  datastore,
  datastoreHost,
  DENY_FRONTEND_TO_BACKEND,
  frontend,
  ids,
  photoAppConfig,
  photoAppPolicy,
  SERVICE_PORT,
  xfccUri,
} from './kit/photo-app.js';
import { logEntries, runMeshpilot, runMeshpilotAsync } from './kit/processes.js';
import { mtlsGetOnce, readIssued } from './kit/tls-client.js';
import { applyConfig, connectedReplicaPort, etcdFlags, prepareReplicas, type Replica } from './kit/replicas.js';
import type { TestWorkload } from './kit/mesh.js';

// photo-frontend may call datastore too: a policy the datastore sidecar (on replica C) enforces.
const ALLOW_FRONTEND_TO_DATASTORE = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: datastore-allow-frontend
  namespace: datastore-ns
spec:
  selector:
    matchLabels:
      app: datastore
  action: ALLOW
  rules:
    - from:
        - source:
            principals: ['cluster.local/ns/photo-ns/sa/photo-frontend']
`;

describe('replicas on etcd with real Envoy (scenario 10)', function () {
  this.timeout(240_000);
  let cluster: EtcdCluster;
  let dir: string;
  let replicas: Replica[];
  let envoys: EnvoyPool;
  const apps: HttpUpstream[] = [];
  const sidecars = new Map<string, EnvoyProcess>();
  let caArgs: string[];

  const get = (host: string) => httpRequest({ host: frontend.address, port: OUTBOUND_HTTP_PORT, path: '/', headers: { host } });
  const statusOf = async (host: string) => (await get(host)).status;
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  before(async () => {
    cluster = await startEtcdCluster({ members: 3 });
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-replicas-'));
    // One CA for every replica, in etcd, its keys sealed with this key.
    const keyFile = join(dir, 'ca-store.key');
    writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
    caArgs = ['--ca-store', 'etcd', '--ca-store-key', keyFile, ...etcdFlags(cluster)];
    const configDir = join(dir, 'config');
    mkdirSync(configDir);
    writeFileSync(join(configDir, 'mesh.yaml'), photoAppConfig());
    writeFileSync(join(configDir, 'policy.yaml'), photoAppPolicy());
    // Through etcd member 0 only: the replicas read it from whichever member they talk to.
    await applyConfig(cluster, [configDir], [0]);
    replicas = await prepareReplicas({
      dir,
      names: ['a', 'b', 'c'],
      cluster,
      extraArgs: ['--ca-store', 'etcd', '--ca-store-key', keyFile],
    });
    envoys = envoyPool();
    const at = (r: Replica) => `127.0.0.1:${r.xdsPort}`;
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const sidecar = async (w: TestWorkload, controlPlane: string) => {
      apps.push(await startHttpUpstream({ host: w.address, port: APP_PORT, name: w.name }));
      const bootstrap = JSON.parse(
        runMeshpilot([
          'bootstrap',
          ...caArgs,
          '--namespace',
          w.namespace,
          '--workload',
          w.name,
          '--service-account',
          w.serviceAccount ?? w.name,
          '--address',
          w.address,
          '--control-plane',
          controlPlane,
        ]),
      ) as Record<string, unknown>;
      sidecars.set(w.name, await envoys.start({ name: `${w.name}-sidecar`, bootstrap }));
    };
    // A first (it creates the CA in etcd): photo-frontend's sidecar lists every replica but finds
    // only A up, so it is on A. Then B and C (they adopt the CA), photo-backend's sidecar on B
    // only and datastore's on C only: what they enforce must reach them through B and C.
    await a.start();
    await sidecar(frontend, [a, b, c].map(at).join(','));
    await b.start();
    await c.start();
    await sidecar(backend, at(b));
    await sidecar(datastore, at(c));
  });
  afterEach(function () {
    envoys?.dumpLogsIfFailed(this.currentTest);
    if (this.currentTest?.state === 'failed')
      for (const r of replicas ?? []) console.error(`--- replica ${r.name} ---\n${r.current()?.logs(40)}`);
  });
  after(async () => {
    await envoys?.stopAll();
    for (const r of replicas ?? []) await r.current()?.stop('SIGKILL');
    await Promise.all(apps.map((x) => x.close()));
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('three replicas serve the photo app: mTLS with SPIFFE IDs, policy enforced', async () => {
    await eventually(async () => (await statusOf(backendHost)) === 200, { timeoutMs: 30_000, description: 'frontend → backend' });
    const r = await get(backendHost);
    assert.equal(xfccUri((r.json as { headers: Record<string, string> }).headers), ids.frontend);
    await eventually(async () => (await statusOf(datastoreHost)) === 403, { description: 'frontend → datastore denied' });
    // Each sidecar is on the replica planned.
    assert.equal(await connectedReplicaPort(sidecars.get(frontend.name)!), replicas[0]!.xdsPort);
    assert.equal(await connectedReplicaPort(sidecars.get(backend.name)!), replicas[1]!.xdsPort);
    assert.equal(await connectedReplicaPort(sidecars.get(datastore.name)!), replicas[2]!.xdsPort);
    for (const rep of replicas) assert.equal(await rep.metric('meshpilot_config_store_connected'), 1, `replica ${rep.name} watches etcd`);
  });

  it('meshpilot apply changes a policy and the sidecars on B and C enforce it; delete takes it back', async () => {
    await applyConfig(cluster, [file('deny.yaml', DENY_FRONTEND_TO_BACKEND), file('allow-ds.yaml', ALLOW_FRONTEND_TO_DATASTORE)], [0]);
    await eventually(async () => (await statusOf(backendHost)) === 403, {
      description: 'the DENY enforced by the backend sidecar (replica B)',
    });
    await eventually(async () => (await statusOf(datastoreHost)) === 200, {
      description: 'the ALLOW enforced by the datastore sidecar (replica C)',
    });
    const flags = etcdFlags(cluster);
    await runMeshpilotAsync(['delete', 'authorizationpolicy', 'photo-backend-deny-frontend', '-n', 'photo-ns', ...flags]);
    await runMeshpilotAsync(['delete', 'authorizationpolicy', 'datastore-allow-frontend', '-n', 'datastore-ns', ...flags]);
    await eventually(async () => (await statusOf(backendHost)) === 200, { description: 'the DENY gone' });
    await eventually(async () => (await statusOf(datastoreHost)) === 403, { description: 'the ALLOW gone' });
  });

  it('a certificate revoked through replica B is refused at the sidecars on A and C within 5 s', async () => {
    const stateB = replicas[1]!.stateDir;
    const out = join(dir, 'issued-through-b');
    const said = await runMeshpilotAsync([
      'ca', 'issue', '--state-dir', stateB,
      '--spiffe-id', ids.backend, '--out', out, '--ttl', '1h',
    ]); // prettier-ignore
    const serial = /serial: ([0-9a-f]+)/.exec(said)![1]!;
    const cert = readIssued(out);
    // photo-backend's identity: photo-frontend's sidecar (A, no policy) and datastore's (C, allows photo-backend) accept it.
    const at = [
      { name: 'photo-frontend (replica A)', address: frontend.address },
      { name: 'datastore (replica C)', address: datastore.address },
    ];
    for (const s of at)
      await eventually(async () => (await mtlsGetOnce(s.address, SERVICE_PORT, cert)) === 200, {
        timeoutMs: 10_000,
        description: `${s.name} accepts the certificate issued through B`,
      });
    const revokedAt = Date.now();
    const r = await runMeshpilotAsync(['ca', 'revoke', '--state-dir', stateB, '--serial', serial]);
    assert.match(r, /via the running control plane/);
    for (const s of at) {
      await eventually(async () => (await mtlsGetOnce(s.address, SERVICE_PORT, cert)) !== 200, {
        timeoutMs: Math.max(1, 5_000 - (Date.now() - revokedAt)),
        intervalMs: 50,
        description: `${s.name} refuses the certificate revoked through B`,
      });
      console.log(`      revoked through B, refused at ${s.name} ${Date.now() - revokedAt} ms later`);
    }
    // Mesh traffic still flows.
    assert.equal(await statusOf(backendHost), 200);
  });

  it('SIGKILL of the replica the frontend uses, under load: zero failed requests, it resyncs from another', async () => {
    const fe = sidecars.get(frontend.name)!;
    const port = await eventually(async () => (await connectedReplicaPort(fe)) ?? false, {
      description: 'frontend connected to a replica',
    });
    const victim = replicas.find((r) => r.xdsPort === port)!;
    const listenerVersions = async () => {
      const dump = (await fe.configDump('resource=dynamic_listeners')) as {
        configs?: { name: string; active_state?: { version_info?: string } }[];
      };
      return Object.fromEntries((dump.configs ?? []).map((c) => [c.name, c.active_state?.version_info]));
    };
    const before = await listenerVersions();
    const load = startLoad({
      host: frontend.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: backendHost,
      concurrency: 2,
      maxDurationMs: 60_000,
      pauseMs: 10,
    });
    await eventually(() => load.counts().ok > 20, { description: 'load flowing' });
    const killed = await victim.current().stop('SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    const other = await eventually(
      async () => {
        const p = await connectedReplicaPort(fe);
        return p !== undefined && p !== victim.xdsPort ? p : false;
      },
      { timeoutMs: 20_000, description: 'the frontend on another replica' },
    );
    const successor = replicas.find((r) => r.xdsPort === other)!;
    await eventually(
      () => logEntries(successor.current().lines()).some((l) => l.msg === 'proxy connected' && String(l.node).includes(frontend.name)),
      { description: `replica ${successor.name} serving the frontend` },
    );
    await eventually(async () => (await fe.stat('control_plane.connected_state')) === 1, { description: 'frontend connected' });
    const during = load.counts().ok;
    await eventually(() => load.counts().ok > during + 20, { description: 'traffic after the failover' });
    const counts = await load.stop();
    console.log(`      ${formatCounts(`failover ${victim.name} → ${successor.name}`, counts)}`);
    assert.equal(counts.failed, 0, JSON.stringify(counts.failures));
    // Same config from every replica: the listeners' content versions did not move, and nothing older came back.
    assert.deepEqual(await listenerVersions(), before);
    const seen = (await get(backendHost)).json as { headers: Record<string, string> };
    assert.equal(xfccUri(seen.headers), ids.frontend, 'trust unbroken: mTLS with the same identities');
    await victim.start();
  });

  it('one etcd member killed: replicas keep serving and take changes', async () => {
    await cluster.kill(2);
    try {
      assert.equal(await statusOf(backendHost), 200);
      await applyConfig(cluster, [file('deny.yaml', DENY_FRONTEND_TO_BACKEND)]);
      await eventually(async () => (await statusOf(backendHost)) === 403, {
        timeoutMs: 30_000,
        description: 'a change with one member down',
      });
      await runMeshpilotAsync(['delete', 'authorizationpolicy', 'photo-backend-deny-frontend', '-n', 'photo-ns', ...etcdFlags(cluster)]);
      await eventually(async () => (await statusOf(backendHost)) === 200, { timeoutMs: 30_000, description: 'and back' });
    } finally {
      await cluster.restart(2);
    }
  });

  it('all of etcd down: every replica serves its last config and says so in logs and metrics; then recovers', async () => {
    await Promise.all([0, 1, 2].map((i) => cluster.kill(i)));
    for (const r of replicas)
      await eventually(async () => (await r.metric('meshpilot_config_store_connected')) === 0, {
        timeoutMs: 30_000,
        description: `replica ${r.name} to report etcd unreachable`,
      });
    for (const r of replicas)
      assert.ok(
        logEntries(r.current().lines()).some((l) => l.msg === 'config store unreachable: serving the last config'),
        `replica ${r.name} says so in its log`,
      );
    const load = startLoad({
      host: frontend.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: backendHost,
      concurrency: 2,
      maxDurationMs: 5_000,
      maxRequests: 200,
      pauseMs: 10,
    });
    const counts = await load.done;
    console.log(`      ${formatCounts('etcd down', counts)}`);
    assert.equal(counts.failed, 0, JSON.stringify(counts.failures));
    assert.equal(await statusOf(datastoreHost), 403, 'policy still enforced');

    await Promise.all([0, 1, 2].map((i) => cluster.restart(i)));
    for (const r of replicas)
      await eventually(async () => (await r.metric('meshpilot_config_store_connected')) === 1, {
        timeoutMs: 30_000,
        description: `replica ${r.name} back on etcd`,
      });
    await applyConfig(cluster, [file('deny.yaml', DENY_FRONTEND_TO_BACKEND)]);
    await eventually(async () => (await statusOf(backendHost)) === 403, { timeoutMs: 30_000, description: 'changes flow again' });
  });
});
