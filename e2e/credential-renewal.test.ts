// Issue 17, item 3, with real Envoy and real processes: a sidecar whose credential toward the
// control plane is an SVID in files (`bootstrap --cert-dir`), kept by `meshpilot agent
// --cert-dir` (key made locally, CSR with a token first, then renewed with the SVID itself).
// 1. The credential renews under a live Envoy, no restart: each time the server ends the stream
//    at the old certificate's expiry, Envoy reconnects with the renewed one (long after the
//    first token expired).
// 2. The control plane restarts after the SVID and the token expired: the expired certificate
//    alone is refused, and so is the agent's expired token; the documented way back, an
//    operator's `meshpilot token --refresh-into <token file>`, lets the agent get a new SVID
//    and the same Envoy reconnects authenticated.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { eventually, httpRequest, type EnvoyProcess } from './harness/index.js';
import { backend, backendHost, frontend, photoAppConfig } from './kit/photo-app.js';
import { startProcessMesh, type ProcessMesh } from './kit/process-mesh.js';
import { logEntries, runMeshpilot, startMeshpilotProcess, type Child } from './kit/processes.js';

const FRONTEND_ID = 'spiffe://cluster.local/ns/photo-ns/sa/photo-frontend';
const SVID_TTL = '6s';

describe('sidecar credential renewal and the way back after a restart (issue 17)', function () {
  this.timeout(180_000);
  let mesh: ProcessMesh;
  let agent: Child | undefined;
  let envoy: EnvoyProcess;
  let certDir: string;
  let tokenFile: string;
  let rootFile: string;

  before(async () => {
    mesh = await startProcessMesh('credential', { 'mesh.yaml': photoAppConfig() }, [backend]);
    certDir = join(mesh.dir, 'frontend-credential');
    tokenFile = join(mesh.dir, 'frontend-token');
    rootFile = join(mesh.dir, 'root-cert.pem');
    writeFileSync(rootFile, mesh.cp.rootPem());
  });
  afterEach(function () {
    mesh?.dumpIfFailed(this.currentTest);
    if (this.currentTest?.state === 'failed' && agent) console.error(`--- agent ---\n${agent.logs(40)}`);
  });
  after(async () => {
    await agent?.stop();
    await mesh?.stop();
  });

  const token = (ttl: string) =>
    runMeshpilot([
      ...['token', '--state-dir', mesh.stateDir, '--namespace', 'photo-ns', '--service-account', 'photo-frontend'],
      ...['--ttl', ttl, '--refresh-into', tokenFile],
    ]);
  // The agent's defaults reach the server's: no --tls-server-name (it pins the control plane's SPIFFE ID).
  const startAgent = () =>
    startMeshpilotProcess('agent', [
      ...['agent', '--ca-address', `127.0.0.1:${mesh.cp.xdsPort}`, '--ca-root', rootFile, '--token-file', tokenFile],
      ...['--namespace', 'photo-ns', '--service-account', 'photo-frontend', '--cert-dir', certDir, '--cert-ttl', SVID_TTL],
    ]);
  const fileSerial = () => new X509Certificate(readFileSync(join(certDir, 'cert-chain.pem'))).serialNumber.toLowerCase().replace(/^0+/, '');
  const fileNotAfter = () => Date.parse(new X509Certificate(readFileSync(join(certDir, 'cert-chain.pem'))).validTo);
  const frontendConnections = () =>
    logEntries(mesh.cp.current().lines()).filter((l) => l.msg === 'proxy connected' && l.identity === FRONTEND_ID) as unknown as {
      credential: { via: string; serial?: string };
    }[];
  const request = () => httpRequest({ host: frontend.address, port: OUTBOUND_HTTP_PORT, path: '/', headers: { host: backendHost } });
  const metric = async (name: string, labels: string) => {
    const text = await (await fetch(`http://127.0.0.1:${mesh.cp.adminPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };

  it('renews the credential under a live Envoy: the stream reconnects with each new SVID, no restart, long after the token expired', async () => {
    token('5s');
    const tokenExpires = Date.now() + 5_000;
    agent = startAgent();
    await agent.waitForLog((l) => l.includes('"svid issued"'), 'first SVID');
    const bootstrap = mesh.bootstrap(frontend, ['--cert-dir', certDir]);
    assert.ok(!JSON.stringify(bootstrap).includes('authorization'), 'no token in the bootstrap');
    envoy = await mesh.envoys.start({ name: 'photo-frontend-sidecar', bootstrap });
    await eventually(async () => (await request()).status === 200, { description: 'frontend → backend' });
    const pid = envoy.pid;
    // Clients that check names reach the server by the address it listens on: its certificate carries that IP SAN.
    const checked = await new Promise<boolean>((resolve, reject) => {
      const t = tlsConnect({ host: '127.0.0.1', port: mesh.cp.xdsPort, ca: mesh.cp.rootPem(), ALPNProtocols: ['h2'] }, () => {
        resolve(t.authorized);
        t.destroy();
      });
      t.on('error', reject);
    });
    assert.equal(checked, true, 'the serving certificate is valid for 127.0.0.1');

    // Three certificates in a row on the xDS connection, each presented after a renewal in the files.
    const serials = await eventually(
      () => {
        const s = new Set(frontendConnections().map((c) => c.credential.serial));
        return s.size >= 3 && Date.now() > tokenExpires ? s : false;
      },
      { timeoutMs: 60_000, description: 'three SVIDs presented on reconnects' },
    );
    assert.ok(frontendConnections().every((c) => c.credential.via === 'certificate'));
    const ended = logEntries(mesh.cp.current().lines()).filter((l) => l.msg === 'stream ended: credential expired');
    assert.ok(ended.length >= 2, `the server ended the stream at each expiry (${ended.length})`);
    assert.ok(!logEntries(mesh.cp.current().lines()).some((l) => l.msg === 'stream refused'), 'no stream was refused');
    assert.equal(envoy.pid, pid);
    assert.ok(envoy.running, 'the same Envoy, never restarted');
    await eventually(async () => (await request()).status === 200, { description: 'frontend → backend after renewals' });
    console.log(`      ${serials.size} SVIDs presented; the stream was ended ${ended.length} times at expiry and reconnected`);
  });

  it('after a restart with everything expired: the expired credential is refused; `token --refresh-into` brings the same Envoy back', async () => {
    // The agent goes away (the VM or pod was down) and so does the control plane.
    await agent!.stop();
    await mesh.cp.current().stop('SIGKILL');
    const notAfter = fileNotAfter();
    await eventually(() => Date.now() > notAfter + 1_000, { timeoutMs: 20_000, description: 'the SVID in the files to expire' });

    const second = await mesh.cp.start();
    // Envoy comes back with the expired certificate: refused, counted, and the connection closed each time.
    await eventually(async () => (await metric('meshpilot_xds_streams_refused_total', 'reason="UNAUTHENTICATED"')) >= 2, {
      description: 'the expired certificate refused',
    });
    // TLS verification already drops an expired client certificate, so the stream carries no valid credential.
    assert.ok(logEntries(second.lines()).some((l) => l.msg === 'stream refused' && l.kind === 'no-credential'));
    assert.equal(logEntries(second.lines()).filter((l) => l.msg === 'proxy connected' && l.identity === FRONTEND_ID).length, 0);

    // The agent alone cannot get back in either: its SVID and its token both expired.
    agent = startAgent();
    await agent.waitForLog((l) => l.includes('"certificate request failed"'), 'the expired token refused');
    await eventually(async () => (await metric('meshpilot_csr_refused_total', 'reason="unauthenticated"')) >= 1, {
      description: 'the CSR refusal counted',
    });
    // (Envoy's control_plane.connected_state flickers to 1 while a refused stream opens; the server's log is the truth.)
    assert.equal(logEntries(second.lines()).filter((l) => l.msg === 'proxy connected' && l.identity === FRONTEND_ID).length, 0);

    // The way back: the operator mints a fresh token into the agent's token file. Nothing restarts.
    const before = fileSerial();
    token('1h');
    await eventually(() => fileSerial() !== before, { timeoutMs: 20_000, description: 'a new SVID in the files' });
    const back = await eventually(
      () => {
        const c = logEntries(second.lines()).filter((l) => l.msg === 'proxy connected' && l.identity === FRONTEND_ID);
        return c.length > 0 ? c : false;
      },
      { timeoutMs: 30_000, description: 'the same Envoy reconnected, authenticated' },
    );
    assert.equal((back.at(-1) as unknown as { credential: { via: string } }).credential.via, 'certificate');
    assert.ok(envoy.running);
    await eventually(async () => (await request()).status === 200, { description: 'frontend → backend after the way back' });
  });
});
