import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { err, ok } from '../lib/index.js';
import { createMetrics, createRecordingLogger } from '../observability/index.js';
import { createConnectionGuard } from '../net/index.js';
import { startAdminServer, type AdminServer } from './index.js';

describe('admin server', () => {
  const log = createRecordingLogger();
  let admin: AdminServer;
  const calls: string[] = [];
  const token = 'test-token';

  before(async () => {
    admin = await startAdminServer({
      host: '127.0.0.1',
      port: 0,
      token,
      metrics: createMetrics(),
      log,
      actions: {
        connections: () => [{ nodeId: 'n1' }],
        config: (node) => ({ node }),
        caStatus: () => ({ rotation: 'none' }),
        revoke: (serial) => (serial === 'ab' ? ok({ revoked: serial }) : err(`no unexpired certificate with serial ${serial}`)),
        sign: (req) => {
          calls.push(req.spiffeId);
          return ok({ chainPem: [] });
        },
        rotateRoot: (phase) => ok({ rotation: phase }),
        proxyStatus: (proxy) => (proxy === undefined ? [{ nodeId: 'n1' }] : proxy === 'n1' ? { nodeId: 'n1' } : undefined),
      },
    });
  });
  after(() => admin.close());

  const url = (p: string) => `http://127.0.0.1:${admin.port}${p}`;
  const auth = { authorization: `Bearer ${token}` };

  it('serves health and Prometheus metrics without a token', async () => {
    assert.equal((await fetch(url('/healthz'))).status, 200);
    const m = await fetch(url('/metrics'));
    assert.equal(m.status, 200);
    assert.match(await m.text(), /meshpilot_xds_connected_proxies/);
  });

  it('refuses everything else without the token, and logs it', async () => {
    for (const [method, path] of [
      ['GET', '/debug/connections'],
      ['POST', '/ca/revoke?serial=ab'],
      ['GET', '/ca/status'],
    ] as const) {
      const r = await fetch(url(path), { method, headers: { authorization: 'Bearer wrong' } });
      assert.equal(r.status, 401, path);
    }
    assert.ok(log.lines.some((l) => l.msg === 'admin request refused'));
  });

  it('answers debug views and CA operations with the token, with clear errors', async () => {
    assert.deepEqual(await (await fetch(url('/debug/connections'), { headers: auth })).json(), [{ nodeId: 'n1' }]);
    assert.deepEqual(await (await fetch(url('/debug/config?node=x'), { headers: auth })).json(), { node: 'x' });
    assert.deepEqual(await (await fetch(url('/debug/proxy-status'), { headers: auth })).json(), [{ nodeId: 'n1' }]);
    assert.deepEqual(await (await fetch(url('/debug/proxy-status?proxy=n1'), { headers: auth })).json(), { nodeId: 'n1' });
    const gone = await fetch(url('/debug/proxy-status?proxy=n9'), { headers: auth });
    assert.equal(gone.status, 404);
    assert.match(((await gone.json()) as { error: string }).error, /no connected proxy n9/);
    const revoked = await fetch(url('/ca/revoke?serial=ab'), { method: 'POST', headers: auth });
    assert.equal(revoked.status, 200);
    const unknown = await fetch(url('/ca/revoke?serial=cd'), { method: 'POST', headers: auth });
    assert.equal(unknown.status, 400);
    assert.match(((await unknown.json()) as { error: string }).error, /serial cd/);
    const badPhase = await fetch(url('/ca/rotate-root?phase=sideways'), { method: 'POST', headers: auth });
    assert.equal(badPhase.status, 400);
    assert.equal((await fetch(url('/nowhere'), { headers: auth })).status, 404);
  });

  it('has no shared rotation without a shared CA store, and says so', async () => {
    for (const [method, path] of [
      ['POST', '/ca/rotation'],
      ['GET', '/ca/rotation'],
    ] as const) {
      const r = await fetch(url(path), { method, headers: auth });
      assert.equal(r.status, 404, path);
      assert.match(((await r.json()) as { error: string }).error, /no shared rotation: this control plane keeps its CA alone/);
    }
  });

  it('records a shared rotation, refuses a second one (409) or an unreachable store (503), and checks gateTimeoutMs', async () => {
    let running: string | undefined;
    const shared = await startAdminServer({
      host: '127.0.0.1',
      port: 0,
      token,
      metrics: createMetrics(),
      log,
      actions: {
        connections: () => [],
        config: () => ({}),
        caStatus: () => ({}),
        revoke: () => err('no'),
        sign: () => err('no'),
        rotateRoot: () => err('no'),
        proxyStatus: () => [],
        startRotation: (o) => {
          if (o.gateTimeoutMs === 7) return Promise.resolve(err('ca store unreachable (load rotation at https://a:2379): down'));
          if (running) return Promise.resolve(err(`root rotation ${running} is in progress (step bundle, requested through a at t)`));
          running = 'rotation-1';
          return Promise.resolve(ok({ id: running, forceRetire: o.forceRetire, gateTimeoutMs: o.gateTimeoutMs }));
        },
        rotationView: () => Promise.resolve(ok({ rotation: running ? { id: running } : undefined, reports: [] })),
      },
    });
    try {
      const u = (p: string) => `http://127.0.0.1:${shared.port}${p}`;
      const first = await fetch(u('/ca/rotation?forceRetire=true&gateTimeoutMs=20000'), { method: 'POST', headers: auth });
      assert.equal(first.status, 200);
      assert.deepEqual(await first.json(), { id: 'rotation-1', forceRetire: true, gateTimeoutMs: 20000 });
      const second = await fetch(u('/ca/rotation'), { method: 'POST', headers: auth });
      assert.equal(second.status, 409);
      assert.match(((await second.json()) as { error: string }).error, /root rotation rotation-1 is in progress/);
      assert.equal((await fetch(u('/ca/rotation?gateTimeoutMs=7'), { method: 'POST', headers: auth })).status, 503);
      for (const bad of ['0', '-1', '1.5', 'soon', '300001'])
        assert.equal((await fetch(u(`/ca/rotation?gateTimeoutMs=${bad}`), { method: 'POST', headers: auth })).status, 400, bad);
      assert.deepEqual(await (await fetch(u('/ca/rotation'), { headers: auth })).json(), { rotation: { id: 'rotation-1' }, reports: [] });
    } finally {
      await shared.close();
    }
  });

  it('signs only a well-formed request body, of bounded size', async () => {
    const post = (body: string) =>
      fetch(url('/ca/sign'), { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body });
    assert.equal((await post('not json')).status, 400);
    assert.equal((await post(JSON.stringify({ spiffeId: 1 }))).status, 400);
    assert.equal((await post('x'.repeat(70 * 1024))).status, 400);
    assert.equal((await post(JSON.stringify({ spiffeId: 'spiffe://cluster.local/ns/a/sa/b', publicKeyPem: 'pem' }))).status, 200);
    assert.deepEqual(calls, ['spiffe://cluster.local/ns/a/sa/b']);
  });
});

describe('admin server behind a connection guard', () => {
  it('closes a connection that sends no request by the deadline, keeps one that did, and refuses past its cap', async () => {
    const log = createRecordingLogger();
    const closed: string[] = [];
    const guard = createConnectionGuard({
      listener: 'admin',
      limits: { maxConnections: 2, maxPerSource: 2, firstRequestTimeoutMs: 300 },
      log,
      timers: { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) },
      stats: { closed: (r) => void closed.push(r) },
    });
    const admin = await startAdminServer({
      host: '127.0.0.1',
      port: 0,
      token: 't',
      metrics: createMetrics(),
      log,
      guard,
      actions: {
        connections: () => [],
        config: () => ({}),
        caStatus: () => ({}),
        revoke: () => err('no'),
        sign: () => err('no'),
        rotateRoot: () => err('no'),
        proxyStatus: () => undefined,
      },
    });
    const sockets: Socket[] = [];
    const dial = () =>
      new Promise<Socket>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: admin.port }, () => resolve(s));
        s.on('error', () => resolve(s));
        sockets.push(s);
      });
    try {
      // One idle connection and one that asks for /healthz over keep-alive.
      const idle = await dial();
      const busy = await dial();
      const answered = new Promise<string>((resolve) => busy.once('data', (b: Buffer) => resolve(b.toString())));
      busy.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n');
      assert.match(await answered, /^HTTP\/1.1 200/);
      // A third is over the cap of 2.
      const third = await dial();
      await new Promise<void>((resolve) => (third.destroyed ? resolve() : third.once('close', () => resolve())));
      assert.deepEqual(closed, ['listener-limit']);
      // The idle one is closed at the deadline; the one that made a request is not.
      await new Promise<void>((resolve) => (idle.destroyed ? resolve() : idle.once('close', () => resolve())));
      assert.deepEqual(closed, ['listener-limit', 'no-request']);
      assert.equal(busy.destroyed, false);
    } finally {
      for (const s of sockets) s.destroy();
      guard.close();
      await admin.close();
    }
  });
});
