// Operators can see and prove what the mesh does (issue 13), with real Envoy sidecars of
// the photo app: `meshpilot status` shows every proxy SYNCED, then the NACK Envoy sends for
// a config it refuses (with Envoy's message and the YAML line that caused it), then SYNCED
// again once fixed; Istio-named metrics read from a live /metrics; and `meshpilot ca
// revoke` reports that every proxy acknowledged the new CRL.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMeshpilot, type RunningMeshpilot } from '../src/main.js';
import { sidecarBootstrap } from '../src/bootstrap/index.js';
import { registerCaCommands } from '../src/cli/ca-commands.js';
import { registerStatusCommand } from '../src/cli/status-command.js';
import { generateKeyPair } from '../src/ca/index.js';
import { makeCsr } from '../src/csr/index.js';
import { requestCertificate } from '../src/agent/ca-client.js';
import { createRecordingLogger, silentLogger, type ProxyReport } from '../src/observability/index.js';
import { envoyPool, eventually, type EnvoyProcess } from './harness/index.js';
import { backend, datastore, frontend, ids, photoAppConfig } from './kit/photo-app.js';
import { nodeIdOf, type TestWorkload } from './kit/mesh.js';
import { runCli } from '../src/cli/testing.js';

/** Runs `meshpilot <args>` in-process, as bin.ts registers the commands. */
const cli = (...args: string[]) =>
  runCli(
    (program, io) => {
      registerStatusCommand(program, { write: io.write });
      registerCaCommands(program, { log: silentLogger, write: io.write });
    },
    ...args,
  );

// A second port on photo-backend's Service, 15001, is valid config; but the sidecar's
// inbound listener for it takes the address the outbound listener already has
// (<workload address>:15001), and Envoy refuses the listener update at runtime.
const PORT_ANCHOR = 'app: photo-backend\n  ports:\n';
const withCollision = (yaml: string) =>
  yaml.replace(PORT_ANCHOR, `${PORT_ANCHOR}    - name: http-admin\n      port: 15001\n      targetPort: 8081\n`);

describe('meshpilot status, metrics and revocation proof with real Envoy (issue 13)', function () {
  this.timeout(120_000);
  const envoys = envoyPool();
  const sidecars = new Map<string, EnvoyProcess>();
  const log = createRecordingLogger();
  let dir: string;
  let configDir: string;
  let stateDir: string;
  let mp: RunningMeshpilot;

  const writeConfig = (text: string) => {
    const tmp = join(configDir, '.mesh.yaml.tmp');
    writeFileSync(tmp, text);
    renameSync(tmp, join(configDir, 'mesh.yaml'));
  };
  const startSidecar = async (w: TestWorkload, token?: string, waitReady = true) =>
    envoys.start({
      name: `${w.name}-sidecar${token ? '-bad-token' : ''}`,
      waitReady,
      bootstrap: sidecarBootstrap({
        nodeId: nodeIdOf(w),
        cluster: w.name,
        xdsHost: '127.0.0.1',
        xdsPort: mp.xdsPort,
        tls: { rootCaPem: mp.ca.trustBundle().pem, controlPlaneId: mp.controlPlaneId },
        token: token ?? (await mp.mintToken(w.namespace, w.serviceAccount ?? w.name)),
      }),
    });
  const statusJson = async (proxy?: string) => {
    const r = await cli('status', ...(proxy ? [proxy] : []), '--state-dir', stateDir, '-o', 'json');
    assert.equal(r.exitCode, 0, r.err);
    return JSON.parse(r.out) as ProxyReport | ProxyReport[];
  };
  const scrape = async () => (await fetch(`http://127.0.0.1:${mp.adminPort}/metrics`)).text();
  /** One sample's value, or undefined when the series is absent. */
  const sample = (text: string, series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-status-'));
    configDir = join(dir, 'config');
    stateDir = join(dir, 'state');
    mkdirSync(configDir);
    writeFileSync(join(configDir, 'mesh.yaml'), photoAppConfig());
    mp = await startMeshpilot({ configPaths: [configDir], stateDir, init: true, xdsHost: '127.0.0.1', xdsPort: 0, adminPort: 0, log });
    for (const w of [frontend, backend, datastore]) sidecars.set(w.name, await startSidecar(w));
  });
  afterEach(function () {
    envoys.dumpLogsIfFailed(this.currentTest);
    if (this.currentTest?.state === 'failed')
      for (const l of log.lines.slice(-30)) console.error('meshpilot:', l.level, l.msg, JSON.stringify(l.fields));
  });
  after(async () => {
    await envoys.stopAll();
    await mp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows every proxy of the photo app SYNCED on every type, and one proxy’s workload, SPIFFE ID and SVID', async () => {
    const list = await eventually(
      async () => {
        const l = (await statusJson()) as ProxyReport[];
        assert.equal(l.length, 3);
        for (const p of l) for (const t of p.types) assert.equal(t.status, 'SYNCED', `${p.nodeId} ${t.type}`);
        return l;
      },
      { timeoutMs: 20_000, description: 'every proxy SYNCED' },
    );
    assert.deepEqual(list.map((p) => p.spiffeId).sort(), [ids.datastore, ids.frontend, ids.backend].sort());
    assert.deepEqual(
      list[0]!.types.map((t) => t.type),
      ['lds', 'rds', 'cds', 'eds', 'sds'].filter((t) => list[0]!.types.some((x) => x.type === t)),
    );

    const table = await cli('status', '--state-dir', stateDir);
    assert.equal(table.exitCode, 0, table.err);
    assert.match(table.out, /^NODE ID\s+IDENTITY\s+/);
    assert.equal(table.out.trim().split('\n').length, 4);
    assert.doesNotMatch(table.out, /STALE|NACKED|NOT SENT/);

    const one = await cli('status', 'photo-ns/photo-backend', '--state-dir', stateDir);
    assert.equal(one.exitCode, 0, one.err);
    const cert = mp.svids.current('photo-ns/photo-backend')!;
    assert.match(one.out, new RegExp(`node id:\\s+${nodeIdOf(backend).replace(/[.|~]/g, '\\$&')}`));
    assert.match(one.out, /workload:\s+photo-ns\/photo-backend/);
    assert.match(one.out, new RegExp(`SPIFFE ID:\\s+${ids.backend}`));
    assert.match(one.out, new RegExp(`SVID:\\s+serial ${cert.serialHex}, expires ${new Date(cert.notAfter).toISOString()}`));
  });

  it('refuses clearly: an unknown proxy (exit 1), a wrong state dir and a missing token (exit 2)', async () => {
    const unknown = await cli('status', 'sidecar~127.0.0.99~nobody.nowhere~nowhere.svc.cluster.local', '--state-dir', stateDir);
    assert.equal(unknown.exitCode, 1);
    assert.match(unknown.err, /no connected proxy sidecar~127\.0\.0\.99/);
    const wrongDir = await cli('status', '--state-dir', join(dir, 'no-such-dir'));
    assert.equal(wrongDir.exitCode, 2);
    assert.match(wrongDir.err, /state directory .*no-such-dir does not exist/);
    const noServer = await cli('status', '--state-dir', configDir);
    assert.equal(noServer.exitCode, 2);
    assert.match(noServer.err, /no running meshpilot found for/);
    const badToken = await cli('status', '--admin', `http://127.0.0.1:${mp.adminPort}`, '--token', 'wrong');
    assert.equal(badToken.exitCode, 2);
    assert.match(badToken.err, /refused the token/);
    for (const r of [unknown, wrongDir, noServer, badToken]) assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  });

  it('shows NACKED with Envoy’s message and the YAML line of the port Envoy refused, then SYNCED once fixed', async () => {
    const before = sample(await scrape(), 'pilot_total_xds_rejects{type="lds"}') ?? 0;
    const broken = withCollision(photoAppConfig());
    assert.notEqual(broken, photoAppConfig());
    writeConfig(broken);
    const portLine = broken.split('\n').findIndex((l) => l.includes('port: 15001')) + 1;

    const nacked = await eventually(
      async () => {
        const p = (await statusJson('photo-ns/photo-backend')) as ProxyReport;
        const lds = p.types.find((t) => t.type === 'lds')!;
        assert.equal(lds.status, 'NACKED');
        return lds;
      },
      { timeoutMs: 20_000, description: 'photo-backend LDS NACKED' },
    );
    assert.match(nacked.nack!.error, /15001/);
    assert.deepEqual(
      nacked.nack!.resources.map((r) => [r.name, r.origin?.kind, r.origin?.name, r.origin?.at]),
      [['inbound|15001', 'Service', 'photo-backend', `${join(configDir, 'mesh.yaml')}:${portLine}`]],
    );
    const text = await cli('status', nodeIdOf(backend), '--state-dir', stateDir);
    assert.match(text.out, /LDS\s+NACKED/);
    assert.match(text.out, /envoy: .*15001/);
    assert.ok(
      text.out.includes(`rejected inbound|15001 <- Service photo-ns/photo-backend at ${join(configDir, 'mesh.yaml')}:${portLine}`),
      text.out,
    );
    const during = await scrape();
    assert.ok((sample(during, 'pilot_total_xds_rejects{type="lds"}') ?? 0) > before);
    assert.equal(sample(during, 'meshpilot_xds_proxy_types{status="NACKED"}'), 1);

    writeConfig(photoAppConfig());
    const fixed = await eventually(
      async () => {
        const l = (await statusJson()) as ProxyReport[];
        for (const p of l) for (const t of p.types) assert.equal(t.status, 'SYNCED', `${p.nodeId} ${t.type}`);
        return l.find((p) => p.workload === 'photo-ns/photo-backend')!;
      },
      { timeoutMs: 20_000, description: 'every proxy SYNCED again' },
    );
    assert.equal(fixed.types.find((t) => t.type === 'lds')!.nack?.resources[0]?.name, 'inbound|15001', 'the last NACK stays visible');
    assert.match((await cli('status', nodeIdOf(backend), '--state-dir', stateDir)).out, /last LDS NACK: .*\(since superseded\)/);
  });

  it('exports Istio-named metrics from the live /metrics', async () => {
    // A CSR with a token, and one without a valid credential.
    const keys = generateKeyPair('ec-p256');
    const csr = makeCsr({ privateKey: keys.privateKey, publicKey: keys.publicKey, uriSans: [ids.frontend] });
    const endpoint = { address: `127.0.0.1:${mp.xdsPort}`, rootPem: mp.ca.trustBundle().pem, controlPlaneId: mp.controlPlaneId };
    const good = await requestCertificate(
      endpoint,
      { kind: 'token', token: await mp.mintToken('photo-ns', 'photo-frontend') },
      { csr, timeoutMs: 10_000 },
    );
    assert.ok(good.ok, JSON.stringify(good));
    const bad = await requestCertificate(endpoint, { kind: 'token', token: 'not-a-token' }, { csr, timeoutMs: 10_000 });
    assert.ok(!bad.ok);
    // An xDS stream with a bad credential is refused and counted.
    await startSidecar({ ...frontend, name: 'intruder' }, 'not-a-token', false);

    const m = await eventually(
      async () => {
        const t = await scrape();
        assert.ok((sample(t, 'meshpilot_xds_streams_refused_total{reason="UNAUTHENTICATED"}') ?? 0) >= 1, 'refused stream counted');
        return t;
      },
      { timeoutMs: 15_000, description: 'refused stream counted' },
    );
    assert.equal(sample(m, 'meshpilot_xds_proxy_types{status="SYNCED"}'), 15, 'three proxies, five types each');
    assert.equal(sample(m, 'meshpilot_xds_proxy_types{status="NACKED"}'), 0);
    assert.equal(sample(m, 'pilot_xds{version="1.36.4"}') ?? sample(m, 'pilot_xds{version="unknown"}'), 3);
    for (const type of ['lds', 'cds', 'eds', 'rds', 'sds']) assert.ok((sample(m, `pilot_xds_pushes{type="${type}"}`) ?? 0) >= 3, type);
    assert.ok((sample(m, 'pilot_proxy_convergence_time_count') ?? 0) >= 1, 'the config changes were timed');
    assert.equal(sample(m, 'citadel_server_csr_count'), 2);
    assert.equal(sample(m, 'citadel_server_success_cert_issuance_count'), 1);
    assert.equal(sample(m, 'meshpilot_csr_refused_total{reason="unauthenticated"}'), 1);
    assert.equal(sample(m, 'citadel_server_cert_chain_expiry_seconds'), undefined, 'a self-signed CA has no intermediate series');
    const root = sample(m, 'citadel_server_root_cert_expiry_seconds')!;
    assert.ok(root > 86_400 * 300, `root expires in ${root}s`);
    for (const id of Object.values(ids)) {
      const left = sample(m, `meshpilot_svid_expiry_seconds{spiffe_id="${id}"}`)!;
      assert.ok(left > 3_600 && left <= 86_400, `${id}: ${left}`);
      assert.ok(sample(m, `meshpilot_svid_lifetime_elapsed_ratio{spiffe_id="${id}"}`)! < 0.5);
    }
  });

  it('ca revoke through the running server reports that every proxy acknowledged the new CRL', async () => {
    const old = mp.svids.current('photo-ns/photo-backend')!;
    const r = await cli('ca', 'revoke', '--state-dir', stateDir, '--serial', old.serialHex, '--timeout', '15s');
    assert.equal(r.exitCode, 0, r.err + r.out);
    assert.match(r.out, new RegExp(`revoked ${old.serialHex} \\(${ids.backend}\\) via the running control plane`));
    assert.match(r.out, /3 of 3 connected proxies acknowledged the new CRL \(and photo-ns\/photo-backend its fresh SVID\) in \d+ms/);
    assert.notEqual(mp.svids.current('photo-ns/photo-backend')!.serialHex, old.serialHex);
  });

  it('drops a workload’s SVID expiry series when its proxies are gone, and forgets the proxy', async () => {
    const ds = sidecars.get('datastore')!;
    process.kill(ds.pid, 'SIGTERM');
    await ds.exited;
    await eventually(
      async () => {
        const m = await scrape();
        assert.equal(sample(m, `meshpilot_svid_expiry_seconds{spiffe_id="${ids.datastore}"}`), undefined);
        assert.ok(sample(m, `meshpilot_svid_expiry_seconds{spiffe_id="${ids.frontend}"}`)! > 0);
        assert.equal(mp.proxyStatus.size(), 2);
      },
      { timeoutMs: 15_000, description: 'datastore series dropped' },
    );
  });
});
