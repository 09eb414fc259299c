// Issue 15 item 5 in capture mode with real Envoy.
import assert from 'node:assert/strict';
import { eventually } from './harness/index.js';
import type { CapturedSidecar } from './kit/captured-sidecar.js';
import { capturedClientScenario } from './kit/captured-client.js';
import type { TestMesh } from './kit/mesh.js';
import { plainGet as get } from './kit/plain-apps.js';
import type { TestHost } from './kit/netns.js';

const OTHER_PORT = 9090;

// The Sidecar's outboundTrafficPolicy in capture mode: with the mesh on ALLOW_ANY, a Sidecar
// selecting the client sets REGISTRY_ONLY for it: a ServiceEntry host in its egress hosts is
// reached by name, an undeclared destination goes to the black hole; without the Sidecar, the same
// undeclared destination passes through.
describe('Sidecar REGISTRY_ONLY in capture mode (issue 15)', function () {
  this.timeout(180_000);
  const scenario = capturedClientScenario();
  let mesh: TestMesh;
  let client: TestHost;
  let outside: TestHost;
  let sidecar: CapturedSidecar;
  const SIDECAR = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: client-registry-only, namespace: apps }
spec:
  workloadSelector: { labels: { app: client } }
  egress:
    - hosts: ["./*"]
  outboundTrafficPolicy: { mode: REGISTRY_ONLY }
`;

  before(async function () {
    ({ mesh, client, outside, sidecar } = await scenario.start({
      tag: 'sc',
      outboundTrafficPolicy: 'ALLOW_ANY',
      files: { 'sidecar.yaml': SIDECAR },
      morePorts: [OTHER_PORT],
    }));
  });

  afterEach(function () {
    scenario.dumpIfFailed(this.currentTest);
  });

  after(async function () {
    this.timeout(60_000);
    await scenario.stop();
  });

  it('reaches the ServiceEntry host its egress hosts name, by name through the sidecar', async () => {
    const a = await eventually(
      async () => {
        const r = await get(client, 'http://api.partner.test/orders');
        return r.status === 200 ? r : false;
      },
      { timeoutMs: 20_000, description: 'api.partner.test by name' },
    );
    assert.equal((JSON.parse(a.body ?? '{}') as { server: string }).server, 'outside');
    assert.ok((await sidecar.stat('cluster.outbound|80||api.partner.test.upstream_rq_total')) >= 1);
  });

  it('sends an undeclared destination to the black hole (the Sidecar’s REGISTRY_ONLY over the mesh’s ALLOW_ANY)', async () => {
    const holeBefore = await sidecar.stat('tcp.BlackHoleCluster.downstream_cx_total');
    const refused = await get(client, `http://${outside.ip}:${OTHER_PORT}/`);
    assert.ok(refused.status === undefined && refused.error !== undefined, JSON.stringify(refused));
    assert.ok((await sidecar.stat('tcp.BlackHoleCluster.downstream_cx_total')) > holeBefore, 'sent to the black hole');
  });

  it('without the Sidecar, the mesh’s ALLOW_ANY passes the same destination through', async () => {
    mesh.writeConfig('sidecar.yaml', '# no Sidecar\n');
    const a = await eventually(
      async () => {
        const r = await get(client, `http://${outside.ip}:${OTHER_PORT}/`);
        return r.status === 200 ? r : false;
      },
      { timeoutMs: 20_000, description: 'the undeclared destination passed through' },
    );
    assert.equal((JSON.parse(a.body ?? '{}') as { port: number }).port, OTHER_PORT);
    assert.ok((await sidecar.stat('tcp.PassthroughCluster.downstream_cx_total')) >= 1, 'through the passthrough cluster');
  });
});
