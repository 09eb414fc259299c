// Capture mode's foundation with a real Envoy: `meshpilot capture` rules in test namespaces send an
// unmodified client's call by service name through its Envoy's 15001, and the server's inbound
// through its Envoy's 15006, while Envoy's own traffic is not captured and `--clean` undoes it all.
// The listeners are static (e2e/kit/capture-envoy.ts) until the generators emit them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { hostsFileFor } from '../src/capture/index.js';
import { eventually } from './harness/index.js';
import {
  captureBootstrap,
  outboundCluster,
  outboundStatPrefix,
  startNetnsEnvoy,
  type NetnsEnvoy,
  type OutboundService,
} from './kit/capture-envoy.js';
import { createTestNet, ensureProxyUser, netMode, PROXY_UID, type NsProcess, type TestHost, type TestNet } from './kit/netns.js';

const BIN = fileURLToPath(new URL('../src/cli/bin.js', import.meta.url));
const DOMAIN = 'cluster.local';
const APP_PORT = 9080;
// The app also listens here, but the server's Envoy has no inbound chain for it.
const UNSERVED_PORT = 9081;
// Excluded from inbound capture, like a health port: reached directly.
const HEALTH_PORT = 15021;

// An unmodified server: it only listens, and says which port and peer address it saw.
const SERVER_APP = `
const http = require('node:http');
const ports = process.argv.slice(1).map(Number);
let up = 0;
for (const port of ports) {
  http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ port, remote: req.socket.remoteAddress, host: req.headers.host }));
  }).listen(port, '0.0.0.0', () => { if (++up === ports.length) console.log('listening ' + ports.join(',')); });
}`;

// An unmodified client: a plain http.get by URL, name resolution through /etc/hosts.
const CLIENT_APP = `
const http = require('node:http');
const req = http.get(process.argv[1], { timeout: 4000 }, (res) => {
  let body = '';
  res.on('data', (c) => (body += c));
  res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, body })));
});
req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
req.on('error', (e) => console.log(JSON.stringify({ error: e.code || e.message })));`;

interface Answer {
  status?: number;
  error?: string;
  seen?: { port: number; remote: string; host: string };
}

async function get(host: TestHost, url: string, uid?: number): Promise<Answer> {
  const r = await host.exec([process.execPath, '-e', CLIENT_APP, url], { uid, timeoutMs: 10_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || line === '') throw new Error(`client in ${host.ns} failed (${r.status}): ${r.stderr}`);
  const parsed = JSON.parse(line) as { status?: number; body?: string; error?: string };
  return { status: parsed.status, error: parsed.error, seen: parsed.body !== undefined ? JSON.parse(parsed.body) : undefined };
}

function meshpilot(args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function mustCapture(args: readonly string[]): void {
  const r = meshpilot(['capture', ...args]);
  assert.equal(r.status, 0, `meshpilot capture ${args.join(' ')}: ${r.stderr}`);
}

function unusedUid(): number {
  for (let uid = 4242; uid < 4342; uid++) if (spawnSync('getent', ['passwd', String(uid)]).status !== 0) return uid;
  throw new Error('no unused uid in 4242..4341');
}

describe('capture rules with a real Envoy (network namespaces)', function () {
  this.timeout(120_000);
  let net: TestNet | undefined;
  let client: TestHost;
  let server: TestHost;
  let plain: TestHost;
  let serverApp: NsProcess;
  let clientEnvoy: NetnsEnvoy;
  let serverEnvoy: NetnsEnvoy;
  let backend: OutboundService;
  let clientNatBefore: string;
  const envoys: NetnsEnvoy[] = [];

  before(async function () {
    const mode = netMode();
    if (mode.kind === 'loopback') {
      console.log(`    capture e2e skipped: loopback mode (${mode.reason})`);
      this.skip();
    }
    console.log('    capture e2e: netns mode (namespaces joined by a bridge in a hub namespace)');
    ensureProxyUser();
    net = createTestNet();
    client = net.addHost('client');
    server = net.addHost('server');
    plain = net.addHost('plain');
    backend = { host: `photo-backend.photo-ns.svc.${DOMAIN}`, vip: net.vip(0), port: APP_PORT, endpoint: server.ip };
    const services = [{ name: 'photo-backend', namespace: 'photo-ns', vip: backend.vip }];
    client.writeHosts(hostsFileFor('photo-ns', services, DOMAIN));
    plain.writeHosts(hostsFileFor('other-ns', services, DOMAIN));

    serverApp = server.spawn('photo-backend', [
      process.execPath,
      '-e',
      SERVER_APP,
      String(APP_PORT),
      String(UNSERVED_PORT),
      String(HEALTH_PORT),
    ]);
    await serverApp.waitForLine((l) => l.startsWith('listening'));

    clientNatBefore = await client.natTable();
    mustCapture(['--netns', client.ns]);
    mustCapture(['--netns', server.ns, '--exclude-inbound-ports', `15000,${HEALTH_PORT}`]);
    clientEnvoy = await startNetnsEnvoy(client, (adminSocket) => captureBootstrap({ services: [backend], inboundPorts: [], adminSocket }));
    envoys.push(clientEnvoy);
    serverEnvoy = await startNetnsEnvoy(server, (adminSocket) => captureBootstrap({ services: [], inboundPorts: [APP_PORT], adminSocket }));
    envoys.push(serverEnvoy);
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    for (const e of envoys) process.stderr.write(`\n----- ${e.proc.name} -----\n${e.proc.logs(80)}\n`);
    if (serverApp !== undefined) process.stderr.write(`\n----- server app -----\n${serverApp.logs(20)}\n`);
  });

  after(async function () {
    this.timeout(30_000);
    for (const e of envoys) await e.stop();
    await net?.destroy();
  });

  const outboundCx = () => clientEnvoy.stat('listener.0.0.0.0_15001.downstream_cx_total');
  // Requests, not connections: the client Envoy keeps its upstream connection to the server open.
  const inboundRq = () => serverEnvoy.stat(`http.inbound_${APP_PORT}.downstream_rq_total`);
  const inboundUnmatched = () => serverEnvoy.stat('listener.0.0.0.0_15006.no_filter_chain_match');

  it('(a) sends an unmodified client calling a service by name through its Envoy on 15001 to the server', async () => {
    const rqBefore = await clientEnvoy.stat(`http.${outboundStatPrefix(backend)}.downstream_rq_total`);
    const cxBefore = await outboundCx();
    const urls = [
      `http://photo-backend.photo-ns.svc.${DOMAIN}:${APP_PORT}/`,
      `http://photo-backend.photo-ns:${APP_PORT}/`,
      `http://photo-backend:${APP_PORT}/`,
    ];
    for (const url of urls) {
      const a = await get(client, url);
      assert.equal(a.status, 200, `${url}: ${JSON.stringify(a)}`);
      assert.equal(a.seen?.port, APP_PORT);
    }
    assert.equal((await clientEnvoy.stat(`http.${outboundStatPrefix(backend)}.downstream_rq_total`)) - rqBefore, urls.length);
    assert.equal((await outboundCx()) - cxBefore, urls.length, 'each call was one connection to 15001');
    // The access log shows the VIP, restored by the original_dst listener filter, as the destination.
    const entry = `-> ${backend.vip}:${APP_PORT} ${outboundCluster(backend)} 200`;
    await eventually(() => clientEnvoy.accessLog().filter((l) => l.includes(entry)).length >= urls.length, {
      timeoutMs: 5000,
      description: `${urls.length} access log lines with '${entry}'`,
    });
  });

  it('(b) sends inbound connections to the server port through its Envoy on 15006', async () => {
    const before = await inboundRq();
    const a = await get(client, `http://photo-backend.photo-ns:${APP_PORT}/`);
    assert.equal(a.status, 200);
    // 127.0.0.6 is the source the inbound cluster binds: the app was reached from its own Envoy.
    assert.equal(a.seen?.remote, '127.0.0.6');
    assert.equal((await inboundRq()) - before, 1);
    await eventually(() => serverEnvoy.accessLog().some((l) => l.includes(`-> ${server.ip}:${APP_PORT} inbound|${APP_PORT}|| 200`)), {
      timeoutMs: 5000,
      description: 'an inbound access log line with the server address restored',
    });
  });

  it("(c) does not capture Envoy's own traffic (uid 1337), so nothing loops", async () => {
    const outBefore = await outboundCx();
    const inBefore = await inboundRq();
    const a = await get(client, `http://${server.ip}:${APP_PORT}/`, PROXY_UID);
    assert.equal(a.status, 200, JSON.stringify(a));
    assert.equal((await outboundCx()) - outBefore, 0, 'a connection from uid 1337 skips 15001');
    assert.equal((await inboundRq()) - inBefore, 1, "the server's capture still applies");
    // The same call from the app (root) is captured and passed through to its original destination.
    const passthroughBefore = await clientEnvoy.stat('tcp.PassthroughCluster.downstream_cx_total');
    const b = await get(client, `http://${server.ip}:${APP_PORT}/`);
    assert.equal(b.status, 200, JSON.stringify(b));
    assert.equal((await outboundCx()) - outBefore, 1);
    assert.equal((await clientEnvoy.stat('tcp.PassthroughCluster.downstream_cx_total')) - passthroughBefore, 1);
  });

  it('(e) lets a client without capture reach only what the rules allow', async () => {
    // The VIP means something only to a captured client's Envoy.
    const viaVip = await get(plain, `http://photo-backend.photo-ns:${APP_PORT}/`);
    assert.ok(viaVip.error !== undefined, `the VIP is no host: ${JSON.stringify(viaVip)}`);
    // The app port is reached only through the server's Envoy.
    const before = await inboundRq();
    const unmatchedBefore = await inboundUnmatched();
    const direct = await get(plain, `http://${server.ip}:${APP_PORT}/`);
    assert.equal(direct.status, 200);
    assert.equal(direct.seen?.remote, '127.0.0.6');
    // A port the app listens on but the mesh does not serve is captured and closed by Envoy.
    const unserved = await get(plain, `http://${server.ip}:${UNSERVED_PORT}/`);
    assert.ok(unserved.error !== undefined, `unserved port: ${JSON.stringify(unserved)}`);
    assert.equal((await inboundUnmatched()) - unmatchedBefore, 1, 'Envoy closed it for want of a filter chain');
    assert.equal((await inboundRq()) - before, 1);
    // An excluded inbound port is reached directly.
    const health = await get(plain, `http://${server.ip}:${HEALTH_PORT}/`);
    assert.equal(health.status, 200);
    assert.equal(health.seen?.remote, plain.ip);
    assert.equal((await inboundRq()) - before, 1);
    assert.equal((await inboundUnmatched()) - unmatchedBefore, 1);
  });

  it('refuses a missing proxy user or namespace, a bad port or no privilege, changing nothing', async () => {
    const before = await plain.natTable();
    const noUser = meshpilot(['capture', '--netns', plain.ns, '--proxy-uid', String(unusedUid())]);
    assert.equal(noUser.status, 1);
    assert.match(noUser.stderr, /no user with id \d+ exists/);
    const noNs = meshpilot(['capture', '--netns', `${plain.ns}-absent`]);
    assert.equal(noNs.status, 1);
    assert.match(noNs.stderr, /network namespace .*-absent does not exist/);
    const badPort = meshpilot(['capture', '--netns', plain.ns, '--exclude-outbound-ports', '15012,99999']);
    assert.equal(badPort.status, 1);
    assert.match(badPort.stderr, /entry 2: 99999 is outside 1\.\.65535/);
    // Without root (Envoy's own user here), it refuses before touching anything.
    const unprivileged = spawnSync(
      'setpriv',
      [`--reuid=${PROXY_UID}`, `--regid=${PROXY_UID}`, '--clear-groups', '--', process.execPath, BIN, 'capture', '--netns', plain.ns],
      {
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    assert.equal(unprivileged.status, 1, unprivileged.stderr);
    assert.match(unprivileged.stderr, /capture needs privilege: uid 1337 lacks CAP_NET_ADMIN/);
    assert.equal(await plain.natTable(), before);
  });

  it("(d) --clean leaves the namespace's nat table as it was", async () => {
    const again = meshpilot(['capture', '--netns', client.ns]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already applied/);
    mustCapture(['--netns', client.ns, '--clean']);
    assert.equal(await client.natTable(), clientNatBefore);
    // With capture gone, the app's call to the VIP no longer reaches Envoy (or anything).
    const cxBefore = await outboundCx();
    const a = await get(client, `http://photo-backend:${APP_PORT}/`);
    assert.ok(a.error !== undefined, JSON.stringify(a));
    assert.equal((await outboundCx()) - cxBefore, 0);
    const twice = meshpilot(['capture', '--netns', client.ns, '--clean']);
    assert.equal(twice.status, 0);
    assert.match(twice.stdout, /nothing of capture/);
  });
});
