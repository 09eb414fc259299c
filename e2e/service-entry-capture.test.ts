// Issue 15 item 4 in capture mode with real Envoy: an unmodified app in its own network namespace,
// under outboundTrafficPolicy REGISTRY_ONLY, reaches a ServiceEntry host by name (the hosts file
// `meshpilot hosts` writes maps it to the VIP meshpilot assigned) and a TCP entry by its declared
// address, while the same server at an undeclared port is sent to the black hole.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eventually } from './harness/index.js';
import { startCapturedSidecar, meshpilotCli, type CapturedSidecar } from './kit/captured-sidecar.js';
import { startMesh, type TestMesh } from './kit/mesh.js';
import { plainGet as get, SERVER_APP } from './kit/plain-apps.js';
import { createTestNet, ensureProxyUser, netMode, TMP_PREFIX, type NsProcess, type TestHost, type TestNet } from './kit/netns.js';

const HTTP_PORT = 8080;
const TCP_PORT = 9000;
const OTHER_PORT = 9090;

describe('ServiceEntry in capture mode (REGISTRY_ONLY): declared hosts by name and address, nothing else', function () {
  this.timeout(180_000);
  let net: TestNet | undefined;
  let mesh: TestMesh | undefined;
  let dir: string | undefined;
  let client: TestHost;
  let outside: TestHost;
  let sidecar: CapturedSidecar | undefined;
  const apps: NsProcess[] = [];

  before(async function () {
    const mode = netMode();
    // Capture mode needs root and network namespaces (CI has both): without them this fails, never skips.
    if (mode.kind === 'loopback') throw new Error(`capture mode unavailable: ${mode.reason}`);
    ensureProxyUser();
    net = createTestNet();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${process.pid}-drse-`));
    client = net.addHost('drse-client');
    outside = net.addHost('drse-outside');
    const cpAddress = net.addRootLink();
    const config = `apiVersion: meshpilot.io/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec:
  captureMode: iptables
  serviceCidr: ${net.subnet}.192/26
  outboundTrafficPolicy: { mode: REGISTRY_ONLY }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: client, namespace: apps }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client, namespace: apps }
spec:
  address: ${client.ip}
  serviceAccount: client
  labels: { app: client, security.istio.io/tlsMode: istio }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: partner-api, namespace: apps }
spec:
  hosts: [api.partner.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP, targetPort: ${HTTP_PORT} }]
  endpoints: [{ address: ${outside.ip} }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: partner-db, namespace: apps }
spec:
  hosts: [db.partner.test]
  addresses: [${outside.ip}]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: ${TCP_PORT}, name: tcp, protocol: TCP }]
  endpoints: [{ address: ${outside.ip} }]
`;
    const stateDir = path.join(dir, 'state');
    meshpilotCli(['ca', 'init', '--state-dir', stateDir]);
    mesh = await startMesh({ 'mesh.yaml': config }, { stateDir, xdsHost: cpAddress });
    client.writeHosts(meshpilotCli(['hosts', '--config', mesh.configDir, '--namespace', 'apps']));
    const server = outside.spawn('outside', [
      process.execPath,
      '-e',
      SERVER_APP,
      'outside',
      String(HTTP_PORT),
      String(TCP_PORT),
      String(OTHER_PORT),
    ]);
    apps.push(server);
    await server.waitForLine((l) => l === 'listening');
    meshpilotCli(['capture', '--netns', client.ns]);
    sidecar = await startCapturedSidecar(client, {
      stateDir,
      namespace: 'apps',
      workload: 'client',
      serviceAccount: 'client',
      xdsAddress: `${cpAddress}:${mesh.mp.xdsPort}`,
    });
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    if (sidecar) process.stderr.write(`\n----- ${sidecar.proc.name} -----\n${sidecar.proc.logs(60)}\n`);
    for (const a of apps) process.stderr.write(`\n----- ${a.name} -----\n${a.logs(10)}\n`);
    mesh?.dumpIfFailed(this.currentTest);
  });

  after(async function () {
    this.timeout(60_000);
    await sidecar?.stop();
    await net?.destroy();
    await mesh?.stop();
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the hosts file names the entry at its VIP, and the app reaches it by name through the sidecar', async () => {
    const hosts = meshpilotCli(['hosts', '--config', mesh!.configDir, '--namespace', 'apps']);
    const vip = /^(\d+\.\d+\.\d+\.(\d+)) api\.partner\.test$/m.exec(hosts);
    assert.ok(vip, hosts);
    // Assigned from serviceCidr <subnet>.192/26, as a Service's would be.
    assert.ok(vip[1]!.startsWith(`${net!.subnet}.`) && Number(vip[2]) > 192, vip[1]);
    assert.match(hosts, new RegExp(`^${outside.ip.replaceAll('.', '\\.')} db\\.partner\\.test$`, 'm'));
    const before = await sidecar!.stat('cluster.outbound|80||api.partner.test.upstream_rq_total');
    const a = await eventually(
      async () => {
        const r = await get(client, 'http://api.partner.test/orders');
        return r.status === 200 ? r : false;
      },
      { timeoutMs: 20_000, description: 'api.partner.test by name' },
    );
    const body = JSON.parse(a.body ?? '{}') as { server: string; port: number; host: string };
    assert.deepEqual(body, { server: 'outside', port: HTTP_PORT, host: 'api.partner.test' });
    assert.ok((await sidecar!.stat('cluster.outbound|80||api.partner.test.upstream_rq_total')) > before, 'through the entry’s cluster');
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
    assert.ok((await sidecar!.stat(`cluster.outbound|${TCP_PORT}||db.partner.test.upstream_cx_total`)) >= 1);
    const holeBefore = await sidecar!.stat('tcp.BlackHoleCluster.downstream_cx_total');
    const refused = await get(client, `http://${outside.ip}:${OTHER_PORT}/`);
    assert.ok(refused.status === undefined && refused.error !== undefined, JSON.stringify(refused));
    assert.ok((await sidecar!.stat('tcp.BlackHoleCluster.downstream_cx_total')) > holeBefore, 'sent to the black hole');
  });
});
