// DESIGN.md scenario 6 with real processes and real Envoy: a VM workload's node agent
// makes its key locally, gets its SVID by CSR with a token, serves it to its Envoy over a
// Unix socket, and rotates it with its current SVID as credential. The control plane
// going away for longer than a renewal attempt costs no traffic while the certificate
// is valid, and the agent renews once it is back.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { envoyPool, eventually, startHttpUpstream, type HttpUpstream } from './harness/index.js';
import { leafSerials } from './kit/certs.js';
import { formatCounts, startLoad } from './kit/load.js';
import { APP_PORT, backend, backendHost, loopbackAddress, photoAppConfig, photoAppVm, xfccUri } from './kit/photo-app.js';
import {
  controlPlaneProcess,
  logEntries,
  runMeshpilot,
  startMeshpilotProcess,
  type Child,
  type ControlPlaneProcess,
} from './kit/processes.js';

const vm = { name: 'vm-client', namespace: 'photo-ns', address: loopbackAddress(14) };
const vmId = 'spiffe://cluster.local/ns/photo-ns/sa/vm-client';
describe('VM workload with a node agent (scenario 6)', function () {
  this.timeout(150_000);
  const dir = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-vm-'));
  const configDir = join(dir, 'config');
  const stateDir = join(dir, 'state');
  const socket = join(dir, 'agent.sock');
  const envoys = envoyPool();
  const apps: HttpUpstream[] = [];
  let cp: ControlPlaneProcess;
  let agent: Child | undefined;

  before(async () => {
    runMeshpilot(['ca', 'init', '--state-dir', stateDir]);
    mkdirSync(configDir);
    writeFileSync(join(configDir, 'mesh.yaml'), photoAppConfig());
    writeFileSync(join(configDir, 'vm.yaml'), photoAppVm());
    cp = await controlPlaneProcess({ configDir, stateDir });
    await cp.start();
    apps.push(await startHttpUpstream({ host: backend.address, port: APP_PORT, name: 'photo-backend' }));
    // The backend runs a normal sidecar, bootstrapped by `meshpilot bootstrap` with a token.
    await envoys.start({ name: 'photo-backend-sidecar', bootstrap: bootstrapFor(backend.name, backend.address) });
  });
  afterEach(function () {
    envoys.dumpLogsIfFailed(this.currentTest);
    if (this.currentTest?.state === 'failed') {
      console.error(`--- meshpilot ---\n${cp?.current().logs(60)}`);
      if (agent) console.error(`--- agent ---\n${agent.logs(60)}`);
    }
  });
  after(async () => {
    await envoys.stopAll();
    await agent?.stop();
    await cp?.current().stop();
    await Promise.all(apps.map((a) => a.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  function bootstrapFor(workload: string, address: string, agentSocket?: string): Record<string, unknown> {
    const args = ['bootstrap', '--state-dir', stateDir, '--namespace', 'photo-ns', '--workload', workload, '--service-account', workload];
    args.push('--address', address, '--xds-address', `127.0.0.1:${cp.xdsPort}`);
    if (agentSocket) args.push('--agent-socket', agentSocket);
    return JSON.parse(runMeshpilot(args)) as Record<string, unknown>;
  }

  it('joins the mesh: key made locally, SVID by CSR, served over a Unix socket, mTLS to photo-backend', async () => {
    writeFileSync(join(dir, 'root-cert.pem'), cp.rootPem());
    writeFileSync(
      join(dir, 'token'),
      runMeshpilot(['token', '--state-dir', stateDir, '--namespace', 'photo-ns', '--service-account', 'vm-client']).trim(),
    );
    agent = startMeshpilotProcess('agent', [
      'agent',
      ...['--ca-address', `127.0.0.1:${cp.xdsPort}`, '--ca-root', join(dir, 'root-cert.pem'), '--token-file', join(dir, 'token')],
      ...['--namespace', 'photo-ns', '--service-account', 'vm-client', '--sds-socket', socket],
      ...['--tls-server-name', 'meshpilot.istio-system.svc', '--cert-ttl', '20s'],
    ]);
    await agent.waitForLog((l) => l.includes('"svid issued"'), 'first SVID');
    assert.ok(existsSync(socket), 'the SDS socket exists');
    const vmEnvoy = await envoys.start({ name: 'vm-envoy', bootstrap: bootstrapFor(vm.name, vm.address, socket) });
    const res = await eventually(() => httpGet(), { description: 'vm → photo-backend' });
    assert.equal(res.status, 200);
    assert.equal(xfccUri((res.json as { headers: Record<string, string> }).headers), vmId);
    // The VM's Envoy authenticated to the control plane with the agent's SVID, not a token.
    const connected = logEntries(cp.current().lines()).find((e) => e.msg === 'proxy connected' && String(e.node).includes('vm-client'));
    assert.equal(connected?.identity, vmId);
    // meshpilot never saw the VM's private key: it signed a CSR.
    assert.ok(logEntries(cp.current().lines()).every((e) => !(e.msg === 'svid issued' && String(e.workload).includes('vm-client'))));
    assert.equal((await leafSerials(vmEnvoy)).length, 1);
  });

  it('rotates, and rides out a control plane outage longer than a renewal attempt with zero failed requests', async () => {
    const vmEnvoy = envoys.envoys.find((e) => e.name === 'vm-envoy')!;
    const serials = new Set(await leafSerials(vmEnvoy));
    const load = startLoad({
      host: vm.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: backendHost,
      concurrency: 2,
      maxDurationMs: 100_000,
      pauseMs: 20,
    });
    // A renewal with the current SVID as credential.
    await eventually(
      async () => {
        for (const s of await leafSerials(vmEnvoy)) serials.add(s);
        return serials.size >= 2;
      },
      { timeoutMs: 30_000, intervalMs: 250, description: 'the VM SVID to rotate' },
    );
    // The control plane goes away; the agent tries to renew, fails, backs off, keeps serving.
    await cp.current().stop('SIGTERM');
    const failuresBefore = agent!.lines().filter((l) => l.includes('certificate request failed')).length;
    await agent!.waitForLog(
      () => agent!.lines().filter((l) => l.includes('certificate request failed')).length > failuresBefore,
      'a failed renewal attempt while the CA is down',
      30_000,
    );
    const duringOutage = load.counts();
    // Back again: the agent renews.
    const beforeRestart = serials.size;
    await cp.start();
    await eventually(
      async () => {
        for (const s of await leafSerials(vmEnvoy)) serials.add(s);
        return serials.size > beforeRestart;
      },
      { timeoutMs: 40_000, intervalMs: 250, description: 'the agent to renew after the control plane is back' },
    );
    const counts = await load.stop();
    console.log(
      `      ${formatCounts('vm load', counts)}; requests during the outage window: ${duringOutage.ok}; serials seen: ${serials.size}`,
    );
    assert.equal(counts.failed, 0, JSON.stringify(counts.failures));
    assert.ok(counts.ok > 50);
    assert.ok(duringOutage.ok > 0);
    assert.ok(
      agent!.lines().some((l) => l.includes('"svid renewed"') && l.includes('certificate')),
      'renewals use the SVID as credential',
    );
  });

  async function httpGet() {
    const { httpRequest } = await import('./harness/index.js');
    return httpRequest({ host: vm.address, port: OUTBOUND_HTTP_PORT, path: '/from-vm', headers: { host: backendHost } });
  }
});
