import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createManualClock } from '../lib/index.js';
import { createRecordingLogger } from '../observability/index.js';
import { openIdDiscoveryUrl } from './jwks-discovery.js';
import { createJwksFetcher, type IntervalTimers } from './jwks-fetcher.js';

const KEYS_A =
  '{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}';
const timers: IntervalTimers = { setInterval: () => 1, clearInterval: () => undefined };

describe('OpenID discovery (jwks fetcher, via discovery)', () => {
  let server: Server;
  let base: string;
  let doc: string;
  const hits: string[] = [];

  beforeEach(async () => {
    hits.length = 0;
    server = createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/issuer/.well-known/openid-configuration') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(doc);
      } else if (req.url === '/keys') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(KEYS_A);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    doc = JSON.stringify({ issuer: `${base}/issuer`, jwks_uri: `${base}/keys` });
  });
  afterEach(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  const fetcher = (policy = { allowPlainHttp: true, allowPrivateHosts: true }) => {
    const log = createRecordingLogger();
    return { log, f: createJwksFetcher({ clock: createManualClock(), log, timers, policy }) };
  };

  it('places the discovery document under the issuer (a trailing slash dropped)', () => {
    assert.equal(openIdDiscoveryUrl('https://a.example/'), 'https://a.example/.well-known/openid-configuration');
    assert.equal(openIdDiscoveryUrl('https://a.example/t1'), 'https://a.example/t1/.well-known/openid-configuration');
  });

  it('fetches the discovery document, then the keys at its jwks_uri', async () => {
    const { f, log } = fetcher();
    const uri = openIdDiscoveryUrl(`${base}/issuer`);
    assert.equal(f.get(uri, 'discovery'), undefined);
    await f.refresh();
    assert.equal(f.get(uri, 'discovery'), KEYS_A);
    assert.deepEqual(hits, ['/issuer/.well-known/openid-configuration', '/keys']);
    assert.ok(log.lines.some((l) => l.msg === 'jwks updated' && l.fields.jwksUri === `${base}/keys`));
    f.close();
  });

  for (const [name, body, cause] of [
    ['not JSON', '<html>', /malformed discovery document: not JSON/],
    ['no jwks_uri', '{"issuer":"x"}', /malformed discovery document: no jwks_uri string/],
    ['a jwks_uri that is not a URL', '{"jwks_uri":"keys"}', /is not a URL/],
    ['a jwks_uri on another scheme', '{"jwks_uri":"ftp://127.0.0.1/keys"}', /on another scheme \(ftp:\)/],
  ] as const) {
    it(`reports ${name} as the reason there are no keys, and keeps the last good keys`, async () => {
      const { f, log } = fetcher();
      const uri = openIdDiscoveryUrl(`${base}/issuer`);
      const changes: string[] = [];
      f.onChange((u) => changes.push(u));
      const good = doc;
      doc = body;
      f.get(uri, 'discovery');
      await f.refresh();
      const got = f.get(uri, 'discovery');
      assert.ok(typeof got === 'object' && cause.test(got.error), JSON.stringify(got));
      assert.deepEqual(changes, [uri], 'policies hear of the failure once');
      assert.ok(log.lines.some((l) => l.level === 'warn' && l.fields.via === 'openid discovery' && cause.test(String(l.fields.cause))));
      doc = good;
      await f.refresh();
      assert.equal(f.get(uri, 'discovery'), KEYS_A);
      doc = body;
      await f.refresh();
      assert.equal(f.get(uri, 'discovery'), KEYS_A, 'last good keys kept');
      f.close();
    });
  }

  it('refuses a plain http discovery document unless plain http is allowed', async () => {
    const { f } = fetcher({ allowPlainHttp: false, allowPrivateHosts: true });
    const uri = openIdDiscoveryUrl(`${base}/issuer`);
    f.get(uri, 'discovery');
    await f.refresh();
    const got = f.get(uri, 'discovery');
    assert.ok(typeof got === 'object' && /http:\/\/ is not allowed/.test(got.error), JSON.stringify(got));
    assert.deepEqual(hits, []);
    f.close();
  });

  it('applies the SSRF guard to the discovery document and to its jwks_uri', async () => {
    const { f } = fetcher({ allowPlainHttp: true, allowPrivateHosts: false });
    const uri = openIdDiscoveryUrl(`${base}/issuer`);
    f.get(uri, 'discovery');
    await f.refresh();
    const got = f.get(uri, 'discovery');
    assert.ok(typeof got === 'object' && /loopback/.test(got.error), JSON.stringify(got));
    assert.deepEqual(hits, []);
    f.close();
    // The document is reachable, its jwks_uri is a metadata address: refused before any connection.
    doc = JSON.stringify({ jwks_uri: 'http://169.254.169.254/keys' });
    const g = fetcher().f;
    g.get(uri, 'discovery');
    await g.refresh();
    const got2 = g.get(uri, 'discovery');
    assert.ok(typeof got2 === 'object' && /metadata/.test(got2.error), JSON.stringify(got2));
    g.close();
  });
});
