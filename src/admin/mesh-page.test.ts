// The mesh page's pieces without a browser: access (one-time codes, sessions, forged cookies),
// coalescing of change bursts, the bounded event ring, and the matrix's dry-run verdict.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseConfigFiles } from '../config/index.js';
import { createManualClock, systemClock } from '../lib/index.js';
import { silentLogger } from '../observability/index.js';
import { configEventLogger, createMeshEvents } from './mesh-events.js';
import { createMeshPage } from './mesh-page.js';
import { createMeshViewBuilder, type MeshView } from './mesh-view.js';
import { createPageAccess, SESSION_COOKIE } from './page-access.js';
import { createServer } from 'node:http';

const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

describe('mesh page access', () => {
  it('a login code works once and only before it expires; sessions are random ids, never the token', () => {
    const clock = createManualClock();
    const a = createPageAccess({ token: 'tok', clock, codeTtlMs: 1_000, sessionTtlMs: 10_000 });
    const code = a.newLoginCode();
    const session = a.redeemCode(code);
    assert.ok(session && !session.includes('tok'));
    assert.equal(a.redeemCode(code), undefined, 'second use');
    const late = a.newLoginCode();
    clock.advance(1_001);
    assert.equal(a.redeemCode(late), undefined, 'expired');
    assert.equal(a.authorized(req({ cookie: `${SESSION_COOKIE}=${session}` })), true);
    assert.equal(a.authorized(req({ cookie: `${SESSION_COOKIE}=${session}x` })), false, 'forged cookie');
    assert.equal(a.authorized(req({ cookie: `${SESSION_COOKIE}=tok` })), false, 'the token is not a session');
    assert.equal(a.authorized(req({ authorization: 'Bearer tok' })), true);
    assert.equal(a.authorized(req({ authorization: 'Bearer tok2' })), false);
    assert.equal(a.authorized(req({})), false);
    clock.advance(10_000);
    assert.equal(a.authorized(req({ cookie: `${SESSION_COOKIE}=${session}` })), false, 'session expired');
    assert.equal(a.loginWithToken('nope'), undefined);
    assert.match(a.cookie('x'), /HttpOnly; SameSite=Strict/);
  });

  it('keeps at most maxSessions sessions (oldest dropped)', () => {
    const a = createPageAccess({ token: 't', clock: systemClock, maxSessions: 2 });
    const first = a.loginWithToken('t')!;
    a.loginWithToken('t');
    a.loginWithToken('t');
    assert.equal(a.authorized(req({ cookie: `${SESSION_COOKIE}=${first}` })), false);
  });
});

describe('mesh page events stream', () => {
  it('coalesces a burst of 2,000 changes into a few views', async () => {
    let built = 0;
    const view = (): MeshView => {
      built++;
      return {
        now: 0,
        trustDomain: 'td',
        workloads: [],
        matrix: { services: [], cells: [] },
        ca: { mode: 'm', rotation: 'none', roots: [], revoked: [] },
        events: [],
      };
    };
    const page = createMeshPage({ token: 't', view, clock: systemClock, log: silentLogger, minIntervalMs: 200 });
    const server = createServer((rq, rs) => void page.handle(rq, rs, new URL(rq.url ?? '/', 'http://x')));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    let frames = 0;
    const res = await new Promise<IncomingMessage>((resolve) =>
      request({ host: '127.0.0.1', port, path: '/mesh/events', headers: { authorization: 'Bearer t' } }, resolve).end(),
    );
    res.on('data', (c: Buffer) => (frames += (String(c).match(/event: view/g) ?? []).length));
    try {
      assert.equal(res.statusCode, 200);
      for (let i = 0; i < 2_000; i++) page.changed();
      await new Promise((r) => setTimeout(r, 700));
      assert.ok(frames >= 1 && frames <= 5, `${frames} views sent`);
      assert.equal(built, frames, 'one view built per send, shared by every client');
    } finally {
      res.destroy();
      page.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('mesh events ring', () => {
  it('keeps the last `capacity` events in order', () => {
    const e = createMeshEvents({ clock: createManualClock(), capacity: 3 });
    for (let i = 1; i <= 5; i++) e.record('push', `p${i}`);
    assert.deepEqual(
      e.list().map((x) => x.text),
      ['p3', 'p4', 'p5'],
    );
  });
});

describe('config events', () => {
  it('records an accepted config and a refused one with file:line and field path', () => {
    const e = createMeshEvents({ clock: createManualClock() });
    const log = configEventLogger(silentLogger, e).child({ module: 'config' });
    log.info('config accepted', { version: 'abc', files: 2 });
    log.error('config rejected', { file: 'mesh.yaml', line: 12, path: 'spec.rules[0]', message: 'unknown field' });
    log.warn('config keeps last good version', { version: 'abc' });
    assert.deepEqual(
      e.list().map((x) => [x.kind, x.text]),
      [
        ['config-accepted', 'config accepted (version abc)'],
        ['config-refused', 'config refused: mesh.yaml:12: spec.rules[0]: unknown field'],
      ],
    );
  });
});

describe('mesh view matrix', () => {
  const example = (f: string) => readFileSync(fileURLToPath(new URL(`../../../examples/photo-app/${f}`, import.meta.url)), 'utf8');
  it('reads allow, deny, and a dry-run DENY as would-deny, with the mTLS mode and the deciding policy', () => {
    const dryRun = `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: shadow-deny-backend
  namespace: datastore-ns
  annotations:
    istio.io/dry-run: "true"
spec:
  selector:
    matchLabels:
      app: datastore
  action: DENY
  rules:
    - from:
        - source:
            principals: ['cluster.local/ns/photo-ns/sa/photo-backend']
`;
    const loaded = parseConfigFiles([
      { fileName: 'mesh.yaml', text: example('mesh.yaml') },
      { fileName: 'policy.yaml', text: example('policy.yaml') + dryRun },
    ]);
    assert.ok(loaded.model, JSON.stringify(loaded.diagnostics));
    const build = createMeshViewBuilder({
      model: () => loaded.model,
      proxies: () => [],
      svidOf: () => undefined,
      ca: () =>
        ({
          trustDomain: 'cluster.local',
          mode: 'ephemeral',
          rotation: 'none',
          roots: [],
          intermediates: [],
          revoked: [],
          outstanding: {},
        }) as never,
      crlNextUpdates: () => [],
      events: () => [],
      now: () => 0,
      renewAtFraction: 0.5,
    });
    const cell = (from: string, to: string) => build().matrix.cells.find((c) => c.from === from && c.to === to)!;
    assert.equal(cell('photo-ns/photo-frontend', 'datastore-ns/datastore').verdict, 'deny');
    assert.equal(cell('photo-ns/photo-frontend', 'photo-ns/photo-backend').verdict, 'allow');
    const shadow = cell('photo-ns/photo-backend', 'datastore-ns/datastore');
    assert.equal(shadow.verdict, 'would-deny');
    assert.match(shadow.detail, /shadow-deny-backend/);
    assert.equal(shadow.mtls, 'STRICT');
    assert.equal(build().workloads.length, 3);
  });
});
