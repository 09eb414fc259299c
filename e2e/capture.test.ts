// DESIGN.md scenario 8 (unmodified apps, capture mode) with real Envoy and the listeners meshpilot
// generates: the photo app runs in network namespaces, each workload's Envoy as uid 1337 behind
// `meshpilot capture` rules, bootstrapped by `meshpilot bootstrap --capture`; apps call services by
// name (`meshpilot hosts` files) and listen on the service port itself (port == targetPort).
// meshpilot runs in this process and listens on an address the test net gives the root namespace.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateKeyPair } from '../src/ca/index.js';
import { outboundCluster } from '../src/generate/index.js';
import { mustSpiffeId } from '../src/identity/index.js';
import { unwrap } from '../src/lib/index.js';
import { eventually } from './harness/index.js';
import { startCapturedSidecar, meshpilotCli, type CapturedSidecar } from './kit/captured-sidecar.js';
import { startNetnsEnvoy, type NetnsEnvoy } from './kit/capture-envoy.js';
import { impostorBootstrap } from './kit/impostor.js';
import { startMesh, type TestMesh } from './kit/mesh.js';
import { createTestNet, ensureProxyUser, netMode, TMP_PREFIX, type NsProcess, type TestHost, type TestNet } from './kit/netns.js';
import { ids, photoAppConfig, photoAppPolicy, xfccUri } from './kit/photo-app.js';

const PORT = 9080;
const OUTSIDE_PORT = 9090;
const DOMAIN = 'cluster.local';
const backendCluster = outboundCluster(PORT, `photo-backend.photo-ns.svc.${DOMAIN}`);
const datastoreCluster = outboundCluster(PORT, `datastore.datastore-ns.svc.${DOMAIN}`);

// An unmodified server on the service port itself. It says who it is and what it saw; on /chain
// it calls `next` by name, as an unmodified client, and includes that answer.
const SERVER_APP = `
const http = require('node:http');
const [name, port, next] = process.argv.slice(1);
http.createServer((req, res) => {
  const reply = (extra) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ server: name, headers: req.headers, remote: req.socket.remoteAddress, ...extra }));
  };
  if (next && req.url === '/chain') {
    http.get(next, { timeout: 4000 }, (r) => {
      let body = '';
      r.on('data', (c) => (body += c));
      r.on('end', () => reply({ next: { status: r.statusCode, body } }));
    }).on('error', (e) => reply({ next: { error: e.code || e.message } }));
  } else reply({});
}).listen(Number(port), '0.0.0.0', () => console.log('listening'));`;

// An unmodified client: a plain http.get by URL, names resolved through /etc/hosts.
const CLIENT_APP = `
const http = require('node:http');
const req = http.get(process.argv[1], { timeout: 4000 }, (res) => {
  let body = '';
  res.on('data', (c) => (body += c));
  res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, body })));
});
req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
req.on('error', (e) => console.log(JSON.stringify({ error: e.code || e.message })));`;

interface Seen {
  server: string;
  headers: Record<string, string>;
  remote: string;
  next?: { status?: number; body?: string; error?: string };
}
interface Answer {
  status?: number;
  error?: string;
  seen?: Seen;
}

async function get(host: TestHost, url: string): Promise<Answer> {
  const r = await host.exec([process.execPath, '-e', CLIENT_APP, url], { timeoutMs: 10_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || line === '') throw new Error(`client in ${host.ns} failed (${r.status}): ${r.stderr}`);
  const parsed = JSON.parse(line) as { status?: number; body?: string; error?: string };
  let seen: Seen | undefined;
  try {
    seen = parsed.body !== undefined ? (JSON.parse(parsed.body) as Seen) : undefined;
  } catch {
    seen = undefined; // an Envoy error page, not the app
  }
  return { status: parsed.status, error: parsed.error, seen };
}

function ip(args: readonly string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

describe('capture mode: the photo app by service name through generated listeners (scenario 8)', function () {
  this.timeout(180_000);
  let net: TestNet | undefined;
  let mesh: TestMesh | undefined;
  let dir: string | undefined;
  let fe: TestHost;
  let be: TestHost;
  let ds: TestHost;
  let plain: TestHost;
  let outside: TestHost;
  const sidecars = new Map<string, CapturedSidecar>();
  const apps: NsProcess[] = [];

  const sidecar = (name: string): CapturedSidecar => {
    const s = sidecars.get(name);
    assert.ok(s, name);
    return s;
  };

  function meshYaml(mode: 'ALLOW_ANY' | 'REGISTRY_ONLY'): string {
    const n = net as TestNet;
    return photoAppConfig((y) =>
      y
        .replace('address: 127.0.0.11', `address: ${fe.ip}`)
        .replace('address: 127.0.0.12', `address: ${be.ip}`)
        .replace('address: 127.0.0.13', `address: ${ds.ip}`)
        // Apps listen on the service port: only capture mode allows it.
        .replaceAll('targetPort: 8080', `targetPort: ${PORT}`)
        .replace(
          'spec:\n  trustDomain: cluster.local',
          `spec:\n  trustDomain: cluster.local\n  captureMode: iptables\n  serviceCidr: ${n.subnet}.192/26\n` +
            `  outboundTrafficPolicy: { mode: ${mode} }`,
        )
        // One VIP written out, the others derived from serviceCidr.
        .replace(
          'name: datastore\n  namespace: datastore-ns\nspec:\n',
          `name: datastore\n  namespace: datastore-ns\nspec:\n  clusterIP: ${n.vip(0)}\n`,
        ),
    );
  }

  // photo-frontend takes plaintext too (PERMISSIVE); the rest of the mesh is STRICT.
  const policyYaml = () =>
    photoAppPolicy() +
    `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: frontend-permissive, namespace: photo-ns }
spec:
  selector: { matchLabels: { app: photo-frontend } }
  mtls: { mode: PERMISSIVE }
`;

  before(async function () {
    const mode = netMode();
    if (mode.kind === 'loopback') {
      console.log(`    capture e2e skipped: ${mode.reason}`);
      this.skip();
    }
    ensureProxyUser();
    net = createTestNet();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${process.pid}-mesh-`));
    fe = net.addHost('frontend');
    be = net.addHost('backend');
    ds = net.addHost('datastore');
    plain = net.addHost('plain');
    outside = net.addHost('outside');
    const cpAddress = net.addRootLink();

    const stateDir = path.join(dir, 'state');
    meshpilotCli(['ca', 'init', '--state-dir', stateDir]);
    mesh = await startMesh({ 'mesh.yaml': meshYaml('ALLOW_ANY'), 'policy.yaml': policyYaml() }, { stateDir, xdsHost: cpAddress });

    const workloads: [TestHost, string, string][] = [
      [fe, 'photo-frontend', 'photo-ns'],
      [be, 'photo-backend', 'photo-ns'],
      [ds, 'datastore', 'datastore-ns'],
    ];
    // Before any app starts: `ip netns exec` mounts the hosts file when a process starts.
    for (const [host, , ns] of workloads) host.writeHosts(meshpilotCli(['hosts', '--config', mesh.configDir, '--namespace', ns]));
    plain.writeHosts(meshpilotCli(['hosts', '--config', mesh.configDir, '--namespace', 'other-ns']));
    const serve = async (host: TestHost, name: string, port: number, next?: string) => {
      const p = host.spawn(name, [process.execPath, '-e', SERVER_APP, name, String(port), ...(next ? [next] : [])]);
      apps.push(p);
      await p.waitForLine((l) => l === 'listening');
    };
    await serve(fe, 'photo-frontend', PORT);
    await serve(be, 'photo-backend', PORT, `http://datastore.datastore-ns:${PORT}/`);
    await serve(ds, 'datastore', PORT);
    await serve(outside, 'outside', OUTSIDE_PORT);

    for (const [host] of workloads) meshpilotCli(['capture', '--netns', host.ns]);
    const xdsAddress = `${cpAddress}:${mesh.mp.xdsPort}`;
    for (const [host, name, ns] of workloads) {
      sidecars.set(name, await startCapturedSidecar(host, { stateDir, namespace: ns, workload: name, serviceAccount: name, xdsAddress }));
    }
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    for (const s of sidecars.values()) process.stderr.write(`\n----- ${s.proc.name} -----\n${s.proc.logs(60)}\n`);
    for (const a of apps) process.stderr.write(`\n----- ${a.name} -----\n${a.logs(10)}\n`);
    mesh?.dumpIfFailed(this.currentTest);
  });

  after(async function () {
    this.timeout(60_000);
    for (const s of sidecars.values()) await s.stop();
    await net?.destroy();
    await mesh?.stop();
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('photo-frontend → photo-backend → datastore by service name, each app seeing its caller’s SPIFFE ID', async () => {
    let last: Answer | undefined;
    const a = await eventually(
      async () => {
        const r = (last = await get(fe, `http://photo-backend.photo-ns:${PORT}/chain`));
        return r.status === 200 && r.seen?.next?.status === 200 ? r : false;
      },
      { timeoutMs: 20_000, description: 'frontend → backend → datastore' },
    ).catch((e: Error) => {
      throw new Error(`${e.message}; last answer ${JSON.stringify(last)}`);
    });
    assert.equal(a.seen?.server, 'photo-backend');
    assert.equal(xfccUri(a.seen?.headers), ids.frontend);
    const next = JSON.parse(a.seen?.next?.body ?? '{}') as Seen;
    assert.equal(next.server, 'datastore');
    assert.equal(xfccUri(next.headers), ids.backend);
    // The full name and the short name (same namespace) reach it too.
    for (const url of [`http://photo-backend.photo-ns.svc.${DOMAIN}:${PORT}/`, `http://photo-backend:${PORT}/`]) {
      const r = await get(fe, url);
      assert.equal(r.status, 200, `${url}: ${JSON.stringify(r)}`);
      assert.equal(r.seen?.server, 'photo-backend');
    }
  });

  it('each hop is mTLS by Envoy’s own counters', async () => {
    assert.ok((await sidecar('photo-frontend').stat(`cluster.${backendCluster}.ssl.handshake`)) >= 1, 'frontend → backend, client side');
    assert.ok((await sidecar('photo-backend').stat('listener.0.0.0.0_15006.ssl.handshake')) >= 1, 'backend inbound');
    assert.ok((await sidecar('photo-backend').stat(`cluster.${datastoreCluster}.ssl.handshake`)) >= 1, 'backend → datastore, client side');
    assert.ok((await sidecar('datastore').stat('listener.0.0.0.0_15006.ssl.handshake')) >= 1, 'datastore inbound');
  });

  it('photo-frontend → datastore is refused with 403 by the datastore’s policy', async () => {
    const r = await get(fe, `http://datastore.datastore-ns:${PORT}/`);
    assert.equal(r.status, 403, JSON.stringify(r));
  });

  it('a client without a sidecar cannot reach a STRICT app’s port, and reaches a PERMISSIVE one in plaintext', async () => {
    const before = await sidecar('photo-backend').stat(`http.inbound_${PORT}.downstream_rq_total`);
    const strict = await get(plain, `http://${be.ip}:${PORT}/`);
    assert.ok(strict.status === undefined && strict.error !== undefined, `STRICT backend: ${JSON.stringify(strict)}`);
    assert.equal(await sidecar('photo-backend').stat(`http.inbound_${PORT}.downstream_rq_total`), before, 'the backend app got nothing');
    const permissive = await get(plain, `http://${fe.ip}:${PORT}/`);
    assert.equal(permissive.status, 200, JSON.stringify(permissive));
    assert.equal(permissive.seen?.server, 'photo-frontend');
    assert.equal(xfccUri(permissive.seen?.headers), undefined, 'no client certificate, no identity');
    // Its Envoy took it (inbound capture), not the app directly.
    assert.equal(permissive.seen?.remote, '127.0.0.6');
  });

  it('ALLOW_ANY passes a call outside the mesh through; REGISTRY_ONLY refuses it', async () => {
    const url = `http://${outside.ip}:${OUTSIDE_PORT}/`;
    const passBefore = await sidecar('photo-frontend').stat('cluster.PassthroughCluster.upstream_cx_total');
    const allowed = await get(fe, url);
    assert.equal(allowed.status, 200, JSON.stringify(allowed));
    assert.equal(allowed.seen?.server, 'outside');
    assert.ok((await sidecar('photo-frontend').stat('cluster.PassthroughCluster.upstream_cx_total')) > passBefore);

    mesh!.writeConfig('mesh.yaml', meshYaml('REGISTRY_ONLY'));
    try {
      const holeBefore = await sidecar('photo-frontend').stat('tcp.BlackHoleCluster.downstream_cx_total');
      await eventually(async () => (await get(fe, url)).error !== undefined, { timeoutMs: 20_000, description: 'REGISTRY_ONLY refuses' });
      assert.ok((await sidecar('photo-frontend').stat('tcp.BlackHoleCluster.downstream_cx_total')) > holeBefore, 'sent to the black hole');
      // Mesh services are still reached.
      assert.equal((await get(fe, `http://photo-backend.photo-ns:${PORT}/`)).status, 200);
    } finally {
      mesh!.writeConfig('mesh.yaml', meshYaml('ALLOW_ANY'));
    }
    await eventually(async () => (await get(fe, url)).status === 200, { timeoutMs: 20_000, description: 'ALLOW_ANY again' });
  });

  it('an impostor with a valid SVID of another service account taking the backend’s address is refused (secure naming)', async () => {
    const n = net as TestNet;
    const impostorHost = n.addHost('impostor');
    const impostorApp = impostorHost.spawn('impostor-app', [process.execPath, '-e', SERVER_APP, 'impostor', '8081']);
    apps.push(impostorApp);
    await impostorApp.waitForLine((l) => l === 'listening');
    const keys = generateKeyPair('ec-p256');
    const svid = unwrap(
      mesh!.mp.ca.signSvid({ spiffeId: mustSpiffeId('spiffe://cluster.local/ns/photo-ns/sa/impostor'), publicKey: keys.publicKey }),
    );
    let impostor: NetnsEnvoy | undefined;
    let moved = false;
    try {
      // The backend's address leaves its namespace for the impostor's; the frontend forgets the old MAC.
      ip(['-n', be.ns, 'addr', 'del', `${be.ip}/24`, 'dev', 'eth0']);
      moved = true;
      ip(['-n', impostorHost.ns, 'addr', 'add', `${be.ip}/24`, 'dev', 'eth0']);
      ip(['-n', fe.ns, 'neigh', 'flush', 'all']);
      impostor = await startNetnsEnvoy(impostorHost, (adminSocket) => ({
        ...impostorBootstrap({
          address: be.ip,
          port: PORT,
          chainPem: svid.chainPem.join(''),
          keyPem: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
          rootPem: mesh!.mp.ca.trustBundle().pem,
          upstreamHost: '127.0.0.1',
          upstreamPort: 8081,
        }),
        admin: { address: { pipe: { path: adminSocket } } },
      }));
      const fail = () => sidecar('photo-frontend').stat(`cluster.${backendCluster}.ssl.fail_verify_san`);
      const before = await fail();
      // A pooled connection to the real backend may fail first; a new one meets the impostor.
      const r = await eventually(
        async () => {
          const a = await get(fe, `http://photo-backend.photo-ns:${PORT}/`);
          return a.status === 503 && (await fail()) > before ? a : false;
        },
        { timeoutMs: 20_000, description: 'the frontend sidecar refuses the impostor' },
      );
      assert.equal(r.status, 503);
      assert.equal(await impostor.stat('cluster.app.upstream_rq_total'), 0, 'the impostor never got a request');
    } finally {
      await impostor?.stop();
      if (moved) {
        spawnSync('ip', ['-n', impostorHost.ns, 'addr', 'del', `${be.ip}/24`, 'dev', 'eth0']);
        ip(['-n', be.ns, 'addr', 'add', `${be.ip}/24`, 'dev', 'eth0']);
        // The default route went with the address.
        ip(['-n', be.ns, 'route', 'replace', 'default', 'via', `${n.subnet}.1`]);
        ip(['-n', fe.ns, 'neigh', 'flush', 'all']);
      }
    }
    // The real backend answers again.
    await eventually(async () => (await get(fe, `http://photo-backend.photo-ns:${PORT}/`)).status === 200, {
      timeoutMs: 20_000,
      description: 'frontend → real backend again',
    });
  });
});
