// Sidecar scoping with real Envoy (issue 15, item 5): a Sidecar selecting photo-frontend with
// egress hosts `./*` gives its proxy only its own namespace's services: the datastore cluster
// leaves its config_dump, photo-frontend → photo-backend still works, photo-frontend → datastore
// has no route; photo-backend, not selected, keeps the whole mesh. Removing the Sidecar brings it back.
import assert from 'node:assert/strict';
import { startMesh, type TestMesh } from './kit/mesh.js';
import { eventually, type EnvoyProcess } from './harness/index.js';
import { backend, backendHost, datastore, datastoreHost, frontend, photoAppConfig } from './kit/photo-app.js';

const DATASTORE_CLUSTER = 'outbound|9080||datastore.datastore-ns.svc.cluster.local';
const BACKEND_CLUSTER = 'outbound|9080||photo-backend.photo-ns.svc.cluster.local';

const SIDECAR = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: frontend-own-namespace, namespace: photo-ns }
spec:
  workloadSelector:
    labels: { app: photo-frontend }
  egress:
    - hosts: ["./*"]
`;

describe('Sidecar egress scoping with real Envoy (issue 15)', function () {
  this.timeout(120_000);
  let mesh: TestMesh;
  const envoys = new Map<string, EnvoyProcess>();

  const clusters = async (who: typeof frontend): Promise<string[]> => {
    const envoy = envoys.get(who.name);
    assert.ok(envoy, `no envoy for ${who.name}`);
    const dump = JSON.stringify(await envoy.configDump());
    return [...dump.matchAll(/"name":"(outbound\|[^"]+)"/g)].map((m) => m[1]!);
  };

  before(async () => {
    mesh = await startMesh({ 'mesh.yaml': photoAppConfig(), 'sidecar.yaml': SIDECAR }, { apps: [frontend, backend, datastore] });
    for (const w of [frontend, backend, datastore]) envoys.set(w.name, await mesh.startSidecar(w));
  });
  afterEach(function () {
    mesh?.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
  });

  it('removes the datastore cluster from photo-frontend’s config_dump, and keeps photo-backend’s', async () => {
    const front = await clusters(frontend);
    assert.ok(front.includes(BACKEND_CLUSTER), front.join(', '));
    assert.ok(!front.includes(DATASTORE_CLUSTER), 'the datastore cluster is out of photo-frontend’s scope');
    assert.ok((await clusters(backend)).includes(DATASTORE_CLUSTER), 'photo-backend has no Sidecar: it sees the whole mesh');
  });

  it('traffic inside the scope still works; outside it has no route', async () => {
    const ok = await eventually(async () => {
      const r = await mesh.call(frontend, backendHost, '/photos');
      return r.status === 200 ? r : false;
    });
    assert.equal((ok.json as { server: string }).server, 'photo-backend');
    assert.equal((await mesh.call(frontend, datastoreHost, '/blobs')).status, 404);
    assert.equal((await mesh.call(backend, datastoreHost, '/blobs')).status, 200);
  });

  it('removing the Sidecar gives photo-frontend the whole mesh again', async () => {
    mesh.writeConfig('sidecar.yaml', '# no Sidecar\n');
    await eventually(async () => (await clusters(frontend)).includes(DATASTORE_CLUSTER), {
      description: 'the datastore cluster back in photo-frontend’s config_dump',
    });
    await eventually(async () => (await mesh.call(frontend, datastoreHost, '/blobs')).status !== 404, {
      description: 'a route to datastore again',
    });
  });
});
