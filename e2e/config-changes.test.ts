// The config as users edit it, with real Envoy: a valid change reaches the sidecars
// without a restart; an invalid one is refused with file, line and reason, nothing from
// it is pushed, and the last good config keeps serving.
import assert from 'node:assert/strict';
import { outboundCluster } from '../src/generate/index.js';
import { TypeUrl } from '../src/proto/index.js';
import { eventually, type EnvoyProcess } from './harness/index.js';
import { nodeIdOf, startMesh, type TestMesh } from './kit/mesh.js';
import { backend, backendHost, frontend, loopbackAddress, photoAppConfig } from './kit/photo-app.js';

const CACHE = `
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: photo-cache, namespace: photo-ns }
---
apiVersion: v1
kind: Service
metadata: { name: photo-cache, namespace: photo-ns }
spec:
  selector: { app: photo-cache }
  ports: [{ name: http, port: 9080, targetPort: 8080 }]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: photo-cache, namespace: photo-ns }
spec:
  address: ${loopbackAddress(15)}
  serviceAccount: photo-cache
  labels: { app: photo-cache, security.istio.io/tlsMode: istio }
`;

describe('config changes with real Envoy', function () {
  this.timeout(90_000);
  let mesh: TestMesh;
  let fe: EnvoyProcess;
  let be: EnvoyProcess;
  const cacheCluster = outboundCluster(9080, 'photo-cache.photo-ns.svc.cluster.local');

  before(async () => {
    mesh = await startMesh({ 'mesh.yaml': photoAppConfig() }, { apps: [frontend, backend] });
    fe = await mesh.startSidecar(frontend);
    be = await mesh.startSidecar(backend);
  });
  afterEach(function () {
    mesh.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
  });

  it('pushes a valid change to the sidecars without a restart', async () => {
    const pid = fe.pid;
    const since = mesh.events.length;
    mesh.writeConfig('mesh.yaml', photoAppConfig() + CACHE);
    await mesh.waitForAck(nodeIdOf(frontend), TypeUrl.Cluster, since);
    await eventually(async () => JSON.stringify(await fe.configDump()).includes(cacheCluster), { description: 'the new cluster in Envoy' });
    assert.equal(fe.pid, pid);
  });

  it('refuses an invalid change with file, line and reason, pushes nothing, and keeps serving', async () => {
    const since = mesh.events.length;
    const broken = (photoAppConfig() + CACHE).replace(`address: ${loopbackAddress(15)}`, 'address: not-an-ip');
    mesh.writeConfig('mesh.yaml', broken);
    const line = broken.split('\n').findIndex((l) => l.includes('not-an-ip')) + 1;
    const rejected = await eventually(
      () => mesh.logLines.find((l) => l.msg === 'config rejected' && String(l.fields.message).includes('not-an-ip')) ?? false,
      {
        description: 'the rejection in the log',
      },
    );
    assert.match(String(rejected.fields.file), /mesh\.yaml$/);
    assert.equal(rejected.fields.line, line);
    assert.match(String(rejected.fields.path), /spec\.address/);
    // Traffic still flows on the last good config, which still has the cache cluster.
    const res = await mesh.call(frontend, backendHost);
    assert.equal(res.status, 200);
    assert.ok(JSON.stringify(await fe.configDump()).includes(cacheCluster));
    assert.ok(!mesh.events.slice(since).some((e) => e.kind === 'ack' && e.typeUrl === TypeUrl.Cluster), 'nothing new was pushed');
    // Fixing it takes effect again.
    mesh.writeConfig('mesh.yaml', photoAppConfig());
    await eventually(async () => !JSON.stringify(await fe.configDump()).includes(cacheCluster), {
      description: 'the cache cluster removed',
    });
  });

  // Found by the benchmark: two Services selecting one workload with the same targetPort gave two
  // `inbound|8080||` clusters, the snapshot was refused and the sidecar silently kept its old config.
  it('serves two Services that select one workload with the same targetPort: one inbound cluster, both reachable, status clean', async () => {
    const alias = `
---
apiVersion: v1
kind: Service
metadata: { name: photo-backend-alias, namespace: photo-ns }
spec:
  selector: { app: photo-backend }
  ports: [{ name: http, port: 9080, targetPort: 8080 }, { name: http-alt, port: 9091, targetPort: 8080 }]
`;
    const since = mesh.events.length;
    mesh.writeConfig('mesh.yaml', photoAppConfig() + alias);
    await mesh.waitForAck(nodeIdOf(backend), TypeUrl.Listener, since);
    for (const host of ['photo-backend-alias.photo-ns:9080', 'photo-backend-alias.photo-ns:9091', backendHost]) {
      const res = await eventually(
        async () => {
          const r = await mesh.call(frontend, host);
          return r.status === 200 ? r : false;
        },
        { description: `200 from ${host}` },
      );
      assert.equal(res.status, 200);
    }
    const dump = JSON.stringify(await be.configDump());
    assert.equal(dump.split('"name":"inbound|8080||"').length - 1, 1, 'one inbound|8080|| cluster in Envoy');
    assert.ok(dump.includes('"name":"inbound|9091"'), 'the second service port has its listener');
    const status = mesh.mp.proxyStatus.get(nodeIdOf(backend));
    assert.ok(status, 'the backend is connected');
    assert.equal(status.configError, undefined);
    assert.ok(!mesh.logLines.some((l) => l.msg === 'snapshot not built' || l.msg.startsWith('proxy config not generated')));
    mesh.writeConfig('mesh.yaml', photoAppConfig());
  });
});
