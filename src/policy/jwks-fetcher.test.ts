import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createManualClock } from '../lib/index.js';
import { createRecordingLogger } from '../observability/index.js';
import { createJwksFetcher, type IntervalTimers } from './jwks-fetcher.js';

const KEYS_A =
  '{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}';
const KEYS_B = KEYS_A.replace('"kid":"a"', '"kid":"b"');
// These tests serve JWKS over plain HTTP on 127.0.0.1: the explicit development allowance.
const LOOPBACK_HTTP = { allowPlainHttp: true, allowPrivateHosts: true };

describe('createJwksFetcher', () => {
  let server: Server;
  let base: string;
  let respond: { status: number; body: string };
  let hits = 0;

  beforeEach(async () => {
    respond = { status: 200, body: KEYS_A };
    hits = 0;
    server = createServer((_req, res) => {
      hits++;
      res.writeHead(respond.status, { 'content-type': 'application/json' });
      res.end(respond.body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  function fakeTimers(): IntervalTimers & { tick?: () => void; cleared: boolean; ms?: number } {
    const t: IntervalTimers & { tick?: () => void; cleared: boolean; ms?: number } = {
      cleared: false,
      setInterval(fn, ms) {
        t.tick = fn;
        t.ms = ms;
        return 1;
      },
      clearInterval() {
        t.cleared = true;
      },
    };
    return t;
  }

  it('fetches on first use, then serves the keys', async () => {
    const log = createRecordingLogger();
    const f = createJwksFetcher({ clock: createManualClock(), log, timers: fakeTimers(), policy: LOOPBACK_HTTP });
    assert.equal(f.get(`${base}/jwks`), undefined);
    await f.refresh();
    assert.equal(f.get(`${base}/jwks`), KEYS_A);
    f.close();
  });

  it('keeps the last good keys when the server fails or returns garbage, and logs a warning', async () => {
    const log = createRecordingLogger();
    const f = createJwksFetcher({ clock: createManualClock(), log, timers: fakeTimers(), policy: LOOPBACK_HTTP });
    const uri = `${base}/jwks`;
    f.get(uri);
    await f.refresh();
    for (const r of [
      { status: 500, body: 'oops' },
      { status: 200, body: '<html>not json</html>' },
      { status: 200, body: '{"keys":[]}' },
      { status: 200, body: '{"keys":[{"n":"x"}]}' },
    ]) {
      respond = r;
      await f.refresh();
      assert.equal(f.get(uri), KEYS_A, JSON.stringify(r));
    }
    const warnings = log.lines.filter((l) => l.level === 'warn' && l.msg === 'jwks fetch failed, keeping last good keys');
    assert.equal(warnings.length, 4);
    assert.equal(warnings[0]!.fields.haveKeys, true);
    f.close();
  });

  it('keeps the last good keys when the server is gone', async () => {
    const log = createRecordingLogger();
    const f = createJwksFetcher({ clock: createManualClock(), log, timers: fakeTimers(), policy: LOOPBACK_HTTP });
    const uri = `${base}/jwks`;
    f.get(uri);
    await f.refresh();
    await new Promise<void>((r) => server.close(() => r()));
    server = createServer();
    server.listen(0, '127.0.0.1');
    await f.refresh();
    assert.equal(f.get(uri), KEYS_A);
    assert.ok(log.lines.some((l) => l.level === 'warn'));
    f.close();
  });

  it('never has keys for a URI that never served a JWKS, and says why', async () => {
    respond = { status: 200, body: 'garbage' };
    const f = createJwksFetcher({ clock: createManualClock(), log: createRecordingLogger(), timers: fakeTimers(), policy: LOOPBACK_HTTP });
    f.get(`${base}/jwks`);
    await f.refresh();
    assert.deepEqual(f.get(`${base}/jwks`), { error: 'not JSON' });
    f.close();
  });

  it('refreshes on its timer and reports changes once', async () => {
    const timers = fakeTimers();
    const f = createJwksFetcher({
      clock: createManualClock(),
      log: createRecordingLogger(),
      timers,
      refreshMs: 60_000,
      policy: LOOPBACK_HTTP,
    });
    assert.equal(timers.ms, 60_000);
    const changed: string[] = [];
    f.onChange((u) => changed.push(u));
    const uri = `${base}/jwks`;
    f.get(uri);
    await f.refresh();
    assert.deepEqual(changed, [uri]);
    await f.refresh(); // same keys: no change
    respond = { status: 200, body: KEYS_B };
    const before = hits;
    timers.tick!();
    await f.refresh();
    assert.ok(hits > before);
    assert.equal(f.get(uri), KEYS_B);
    assert.deepEqual(changed, [uri, uri]);
    f.close();
    assert.equal(timers.cleared, true);
  });

  it('refuses oversized responses and bounds the number of URIs', async () => {
    const log = createRecordingLogger();
    const f = createJwksFetcher({ clock: createManualClock(), log, timers: fakeTimers(), maxBytes: 64, maxUris: 1, policy: LOOPBACK_HTTP });
    f.get(`${base}/a`);
    await f.refresh();
    assert.deepEqual(f.get(`${base}/a`), { error: 'response larger than 64 bytes' });
    assert.ok(log.lines.some((l) => /larger than 64/.test(String(l.fields.cause))));
    assert.equal(f.get(`${base}/b`), undefined);
    assert.ok(log.lines.some((l) => l.msg === 'jwks uri not tracked: too many uris'));
    f.close();
  });
});
