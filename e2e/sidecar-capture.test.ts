// Issue 15 item 5 in capture mode with real Envoy.
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
const OTHER_PORT = 9090;

// The Sidecar's outboundTrafficPolicy in capture mode: with the mesh on ALLOW_ANY, a Sidecar
// selecting the client sets REGISTRY_ONLY for it: a ServiceEntry host in its egress hosts is
// reached by name, an undeclared destination goes to the black hole; without the Sidecar, the same
// undeclared destination passes through.
describe('Sidecar REGISTRY_ONLY in capture mode (issue 15)', function () {
  this.timeout(180_000);
  let net: TestNet | undefined;
  let mesh: TestMesh | undefined;
  let dir: string | undefined;
  let client: TestHost;
  let outside: TestHost;
  let sidecar: CapturedSidecar | undefined;
  const apps: NsProcess[] = [];
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
    const mode = netMode();
    // Capture mode needs root and network namespaces (CI has both): without them this fails, never skips.
    if (mode.kind === 'loopback') throw new Error(`capture mode unavailable: ${mode.reason}`);
    ensureProxyUser();
    net = createTestNet();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${process.pid}-sc-`));
    client = net.addHost('sc-client');
    outside = net.addHost('sc-outside');
    const cpAddress = net.addRootLink();
    const config = `apiVersion: meshpilot.io/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec:
  captureMode: iptables
  serviceCidr: ${net.subnet}.192/26
  outboundTrafficPolicy: { mode: ALLOW_ANY }
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
`;
    const stateDir = path.join(dir, 'state');
    meshpilotCli(['ca', 'init', '--state-dir', stateDir]);
    mesh = await startMesh({ 'mesh.yaml': config, 'sidecar.yaml': SIDECAR }, { stateDir, xdsHost: cpAddress });
    client.writeHosts(meshpilotCli(['hosts', '--config', mesh.configDir, '--namespace', 'apps']));
    const server = outside.spawn('sc-outside', [process.execPath, '-e', SERVER_APP, 'outside', String(HTTP_PORT), String(OTHER_PORT)]);
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

  it('reaches the ServiceEntry host its egress hosts name, by name through the sidecar', async () => {
    const a = await eventually(
      async () => {
        const r = await get(client, 'http://api.partner.test/orders');
        return r.status === 200 ? r : false;
      },
      { timeoutMs: 20_000, description: 'api.partner.test by name' },
    );
    assert.equal((JSON.parse(a.body ?? '{}') as { server: string }).server, 'outside');
    assert.ok((await sidecar!.stat('cluster.outbound|80||api.partner.test.upstream_rq_total')) >= 1);
  });

  it('sends an undeclared destination to the black hole (the Sidecar’s REGISTRY_ONLY over the mesh’s ALLOW_ANY)', async () => {
    const holeBefore = await sidecar!.stat('tcp.BlackHoleCluster.downstream_cx_total');
    const refused = await get(client, `http://${outside.ip}:${OTHER_PORT}/`);
    assert.ok(refused.status === undefined && refused.error !== undefined, JSON.stringify(refused));
    assert.ok((await sidecar!.stat('tcp.BlackHoleCluster.downstream_cx_total')) > holeBefore, 'sent to the black hole');
  });

  it('without the Sidecar, the mesh’s ALLOW_ANY passes the same destination through', async () => {
    mesh!.writeConfig('sidecar.yaml', '# no Sidecar\n');
    const a = await eventually(
      async () => {
        const r = await get(client, `http://${outside.ip}:${OTHER_PORT}/`);
        return r.status === 200 ? r : false;
      },
      { timeoutMs: 20_000, description: 'the undeclared destination passed through' },
    );
    assert.equal((JSON.parse(a.body ?? '{}') as { port: number }).port, OTHER_PORT);
    assert.ok((await sidecar!.stat('tcp.PassthroughCluster.downstream_cx_total')) >= 1, 'through the passthrough cluster');
  });
});
