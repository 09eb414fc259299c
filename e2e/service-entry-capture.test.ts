// Issue 15 item 4 in capture mode with real Envoy: an unmodified app in its own network namespace,
// under outboundTrafficPolicy REGISTRY_ONLY, reaches a ServiceEntry host by name (the hosts file
// `meshpilot hosts` writes maps it to the VIP meshpilot assigned) and a TCP entry by its declared
// address, while the same server at an undeclared port is sent to the black hole.
import assert from 'node:assert/strict';
import { eventually } from './harness/index.js';
import { meshpilotCli, type CapturedSidecar } from './kit/captured-sidecar.js';
import { capturedClientScenario, OUTSIDE_HTTP_PORT } from './kit/captured-client.js';
import type { TestMesh } from './kit/mesh.js';
import { plainGet as get } from './kit/plain-apps.js';
import type { TestHost } from './kit/netns.js';

const HTTP_PORT = OUTSIDE_HTTP_PORT;
const TCP_PORT = 9000;
const OTHER_PORT = 9090;

describe('ServiceEntry in capture mode (REGISTRY_ONLY): declared hosts by name and address, nothing else', function () {
  this.timeout(180_000);
  const scenario = capturedClientScenario();
  let subnet: string;
  let mesh: TestMesh;
  let client: TestHost;
  let outside: TestHost;
  let sidecar: CapturedSidecar;

  before(async function () {
    ({ subnet, mesh, client, outside, sidecar } = await scenario.start({
      tag: 'drse',
      outboundTrafficPolicy: 'REGISTRY_ONLY',
      morePorts: [TCP_PORT, OTHER_PORT],
      moreConfig: (outside) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: partner-db, namespace: apps }
spec:
  hosts: [db.partner.test]
  addresses: [${outside.ip}]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: ${TCP_PORT}, name: tcp, protocol: TCP }]
  endpoints: [{ address: ${outside.ip} }]
`,
    }));
  });

  afterEach(function () {
    scenario.dumpIfFailed(this.currentTest);
  });

  after(async function () {
    this.timeout(60_000);
    await scenario.stop();
  });

  it('the hosts file names the entry at its VIP, and the app reaches it by name through the sidecar', async () => {
    const hosts = meshpilotCli(['hosts', '--config', mesh.configDir, '--namespace', 'apps']);
    const vip = /^(\d+\.\d+\.\d+\.(\d+)) api\.partner\.test$/m.exec(hosts);
    assert.ok(vip, hosts);
    // Assigned from serviceCidr <subnet>.192/26, as a Service's would be.
    assert.ok(vip[1]!.startsWith(`${subnet}.`) && Number(vip[2]) > 192, vip[1]);
    assert.match(hosts, new RegExp(`^${outside.ip.replaceAll('.', '\\.')} db\\.partner\\.test$`, 'm'));
    const before = await sidecar.stat('cluster.outbound|80||api.partner.test.upstream_rq_total');
    const a = await eventually(
      async () => {
        const r = await get(client, 'http://api.partner.test/orders');
        return r.status === 200 ? r : false;
      },
      { timeoutMs: 20_000, description: 'api.partner.test by name' },
    );
    const body = JSON.parse(a.body ?? '{}') as { server: string; port: number; host: string };
    assert.deepEqual(body, { server: 'outside', port: HTTP_PORT, host: 'api.partner.test' });
    assert.ok((await sidecar.stat('cluster.outbound|80||api.partner.test.upstream_rq_total')) > before, 'through the entry’s cluster');
  });

  it('a TCP entry is reached at its declared address; the same server on an undeclared port goes to the black hole', async () => {
    const a = await eventually(
      async () => {
        const r = await get(client, `http://${outside.ip}:${TCP_PORT}/`);
        return r.status === 200 ? r : false;
      },
      { timeoutMs: 20_000, description: 'the TCP entry by address' },
    );
    assert.equal((JSON.parse(a.body ?? '{}') as { port: number }).port, TCP_PORT);
    assert.ok((await sidecar.stat(`cluster.outbound|${TCP_PORT}||db.partner.test.upstream_cx_total`)) >= 1);
    const holeBefore = await sidecar.stat('tcp.BlackHoleCluster.downstream_cx_total');
    const refused = await get(client, `http://${outside.ip}:${OTHER_PORT}/`);
    assert.ok(refused.status === undefined && refused.error !== undefined, JSON.stringify(refused));
    assert.ok((await sidecar.stat('tcp.BlackHoleCluster.downstream_cx_total')) > holeBefore, 'sent to the black hole');
  });
});
