import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import {
  adsBootstrap,
  envoyPool,
  eventually,
  freePort,
  httpRequest,
  loopbackUsable,
  startEnvoy,
  startHttpUpstream,
  startTcpEcho,
  staticProxyBootstrap,
  validateEnvoyConfig,
  type EnvoyProcess,
  type HttpUpstream,
} from './index.js';
import { LineRing } from './line-ring.js';

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('e2e harness against real Envoy', function () {
  const envoys = envoyPool();
  const upstreams: HttpUpstream[] = [];
  afterEach(function () {
    envoys.dumpLogsIfFailed(this.currentTest);
  });
  after(async () => {
    await envoys.stopAll();
    await Promise.all(upstreams.map((u) => u.close()));
  });

  it('proxies through a static Envoy, reads stats and config_dump, and stops it cleanly', async () => {
    const upstream = await startHttpUpstream({ name: 'backend' });
    upstreams.push(upstream);
    const listenerPort = await freePort();
    const envoy = await envoys.start({
      name: 'static-proxy',
      bootstrap: staticProxyBootstrap({ listenerPort, upstreamHost: upstream.host, upstreamPort: upstream.port }),
    });
    assert.equal(await envoy.serverState(), 'LIVE');
    assert.equal(await envoy.listenerPort('ingress'), listenerPort);

    const res = await httpRequest({ host: '127.0.0.1', port: listenerPort, path: '/hello?x=1', headers: { 'x-test': 'yes' } });
    assert.equal(res.status, 200, res.body);
    const answer = res.json as { server: string; method: string; path: string; headers: Record<string, string> };
    assert.equal(answer.server, 'backend');
    assert.equal(answer.method, 'GET');
    assert.equal(answer.path, '/hello?x=1');
    assert.equal(answer.headers['x-test'], 'yes');
    assert.equal(answer.headers['x-forwarded-proto'], 'http', 'the sidecar adds x-forwarded-proto');
    assert.ok(answer.headers['x-request-id'], 'the sidecar adds x-request-id');
    assert.equal(upstream.requestCount, 1);

    const ok = await envoy.waitForStat('cluster.upstream.upstream_rq_200', (v) => (v ?? 0) >= 1, 10_000);
    assert.equal(ok, 1);
    assert.equal(await envoy.stat('cluster.upstream.no_such_stat'), undefined);
    assert.ok((await envoy.stats('^http\\.ingress\\.')).has('http.ingress.downstream_rq_total'));

    const dump = await envoy.configDump();
    const listeners = dump.configs.find((c: { '@type': string }) => c['@type'].endsWith('ListenersConfigDump'));
    assert.deepEqual(
      listeners.static_listeners.map((l: { listener: { name: string } }) => l.listener.name),
      ['ingress'],
    );
    assert.match(await envoy.clusters(), /^upstream::127\.0\.0\.1:\d+::health_flags::healthy$/m);

    const pid = envoy.pid;
    const dir = envoy.dir;
    const exit = await envoy.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, 'Envoy exits 0 on SIGTERM');
    assert.equal(envoy.running, false);
    assert.equal(processAlive(pid), false);
    assert.equal(await canBind('127.0.0.1', listenerPort), true, 'the listener port is free again');
    if (!process.env.KEEP_E2E_ARTIFACTS) assert.equal(fs.existsSync(dir), false, 'the temp dir is removed');
    assert.deepEqual(await envoy.stop(), exit, 'stop is idempotent');
  });

  it('starts an ADS sidecar with no control plane: admin up, not ready, stops cleanly', async () => {
    const xdsPort = await freePort(); // nothing listens here
    const envoy = await envoys.start({
      name: 'ads-no-control-plane',
      bootstrap: adsBootstrap({ nodeId: 'sidecar~127.0.0.1~a.ns~ns.svc.cluster.local', cluster: 'a', xdsHost: '127.0.0.1', xdsPort }),
      waitReady: false,
    });
    assert.ok(envoy.adminPort > 0);
    assert.match(await envoy.serverState(), /^(PRE_INITIALIZING|INITIALIZING)$/);
    assert.equal((await envoy.admin('/ready')).status, 503);
    // It keeps trying to reach the control plane.
    await envoy.waitForStat('cluster_manager.cds.update_failure', (v) => (v ?? 0) >= 1, 10_000);
    assert.equal(await envoy.stat('control_plane.connected_state'), 0);

    const dump = await envoy.configDump();
    const bootstrap = dump.configs.find((c: { '@type': string }) => c['@type'].endsWith('BootstrapConfigDump')).bootstrap;
    assert.equal(bootstrap.node.id, 'sidecar~127.0.0.1~a.ns~ns.svc.cluster.local');
    assert.equal(bootstrap.dynamic_resources.ads_config.api_type, 'GRPC');

    assert.deepEqual(await envoy.stop(), { code: 0, signal: null });
    assert.equal(envoy.running, false);
  });

  it('builds ADS bootstraps that Envoy accepts for SotW and delta xDS', async () => {
    for (const apiType of ['GRPC', 'DELTA_GRPC'] as const) {
      const bootstrap = adsBootstrap({
        nodeId: 'n',
        cluster: 'c',
        xdsHost: '::1',
        xdsPort: 15012,
        apiType,
        metadata: { ISTIO_VERSION: 'meshpilot' },
        initialMetadata: { authorization: 'Bearer token' },
        initialFetchTimeoutMs: 0,
      });
      const result = await validateEnvoyConfig(bootstrap);
      assert.ok(result.ok, `${apiType}: ${result.output}`);
    }
    const rejected = await validateEnvoyConfig({ static_resources: { clusters: [{ name: 'x', no_such_field: 1 }] } });
    assert.equal(rejected.ok, false);
    assert.match(rejected.output, /no_such_field/);
  });

  it('fails fast with Envoy’s log when Envoy exits during start', async () => {
    const started = Date.now();
    await assert.rejects(
      startEnvoy({ name: 'bad-config', bootstrap: { static_resources: { listeners: [{ name: 'l', bogus: true }] } } }),
      (error: Error) => {
        assert.match(error.message, /exited early/);
        assert.match(error.message, /bogus/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 5000, 'no waiting for the start timeout');
  });

  it('dumps the logs of the pool’s Envoys when a test failed', () => {
    const fake = { name: 'fake', pid: 1, adminHost: '127.0.0.1', adminPort: 2, dir: '/tmp/x', running: false, logs: () => 'line one' };
    const pool = envoyPool();
    pool.add(fake as unknown as EnvoyProcess);
    const written: string[] = [];
    const original = process.stderr.write;
    process.stderr.write = ((chunk: string) => written.push(chunk) > 0) as typeof process.stderr.write;
    try {
      pool.dumpLogsIfFailed({ state: 'passed' });
      assert.equal(written.length, 0);
      pool.add(fake as unknown as EnvoyProcess);
      pool.dumpLogsIfFailed({ state: 'failed', fullTitle: () => 'suite test' });
    } finally {
      process.stderr.write = original;
    }
    assert.match(written.join(''), /"suite test" failed: last 150 log lines of envoy fake[\s\S]*line one/);
    assert.equal(pool.envoys.length, 0, 'exited Envoys are forgotten after the dump');
  });
});

describe('e2e harness helpers', () => {
  it('serves HTTP and TCP test upstreams on a loopback alias', async function () {
    const host = (await loopbackUsable('127.0.0.11')) ? '127.0.0.11' : '127.0.0.1';
    const upstream = await startHttpUpstream({ name: 'alias', host });
    const echo = await startTcpEcho({ host });
    try {
      const res = await httpRequest({ host, port: upstream.port, path: '/p', method: 'POST', body: 'hi' });
      assert.deepEqual(
        { server: (res.json as { server: string }).server, body: (res.json as { body: string }).body },
        { server: 'alias', body: 'hi' },
      );
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = net.connect({ host, port: echo.port }, () => socket.end('ping'));
        let data = '';
        socket.on('data', (c) => (data += c.toString()));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      assert.equal(reply, 'ping');
      assert.equal(echo.connectionCount, 1);
    } finally {
      await upstream.close();
      await echo.close();
    }
    assert.equal(await canBind(host, upstream.port), true);
  });

  it('eventually retries until success and times out with the description and last error', async () => {
    let calls = 0;
    assert.equal(await eventually(() => ++calls >= 3 && calls, { timeoutMs: 2000, intervalMs: 1 }), 3);
    await assert.rejects(
      eventually(
        () => {
          throw new Error('still broken');
        },
        { timeoutMs: 100, intervalMs: 10, description: 'the thing' },
      ),
      /waiting for the thing: still broken/,
    );
    const started = Date.now();
    await assert.rejects(
      eventually(() => new Promise(() => {}), { timeoutMs: 100, description: 'a hang' }),
      /a hang/,
    );
    assert.ok(Date.now() - started < 1000, 'a hanging attempt does not outlive the deadline');
  });

  it('keeps the last lines of interleaved streams', () => {
    const ring = new LineRing(3);
    ring.write('a', 'one\ntw');
    ring.write('b', 'x\ny\n');
    ring.write('a', 'o\nthree\n');
    assert.deepEqual(ring.tail(), ['y', 'two', 'three']);
    assert.deepEqual(ring.tail(1), ['three']);
  });
});
