import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createEphemeralCa, generateKeyPair } from '../ca/index.js';
import { mustSpiffeId, mustTrustDomain } from '../identity/index.js';
import { createManualClock, unwrap } from '../lib/index.js';
import { createRecordingLogger } from '../observability/index.js';
import { checkJwksTarget, createJwksFetcher, DEFAULT_JWKS_FETCH_POLICY, type HostLookup, type IntervalTimers } from './index.js';

const KEYS =
  '{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}';
const PRIVATE_OK = { allowPlainHttp: false, allowPrivateHosts: true };
const noTimers: IntervalTimers = { setInterval: () => 0, clearInterval: () => {} };

// A resolver that answers from a table and records what it was asked: no test uses real DNS.
function fakeDns(answers: Record<string, string[]>): HostLookup & { asked: string[] } {
  const asked: string[] = [];
  const lookup = async (host: string) => {
    asked.push(host);
    const a = answers[host];
    if (!a) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    return a.map((address) => ({ address, family: (address.includes(':') ? 6 : 4) as 4 | 6 }));
  };
  return Object.assign(lookup, { asked });
}

describe('jwksUri targets (checked without connecting)', () => {
  const dns = fakeDns({
    'jwks.example.org': ['203.0.113.10'],
    'internal.example.org': ['10.1.2.3'],
    'rebind.example.org': ['203.0.113.10', '127.0.0.1'],
    'v6.example.org': ['2001:db8::1', 'fd12::1'],
  });

  const refused: [string, RegExp][] = [
    ['http://jwks.example.org/keys', /must be https/],
    ['ftp://jwks.example.org/keys', /must be https/],
    ['https://user:pw@jwks.example.org/keys', /credentials/],
    ['https://127.0.0.1/keys', /loopback/],
    ['https://127.8.9.10/keys', /loopback/],
    ['https://[::1]/keys', /loopback/],
    ['https://[::ffff:127.0.0.1]/keys', /loopback/],
    ['https://10.0.0.1/keys', /private/],
    ['https://172.16.5.4/keys', /private/],
    ['https://172.31.255.255/keys', /private/],
    ['https://192.168.1.1/keys', /private/],
    ['https://[fd00::1]/keys', /unique local/],
    ['https://[fc00::1]/keys', /unique local/],
    ['https://169.254.10.1/keys', /link-local/],
    ['https://[fe80::1]/keys', /link-local/],
    ['https://0.0.0.0/keys', /unspecified/],
    ['https://169.254.169.254/latest/meta-data/', /metadata/],
    ['https://[fd00:ec2::254]/keys', /metadata/],
    ['https://metadata.google.internal/computeMetadata/v1/', /metadata host/],
    ['https://internal.example.org/keys', /internal\.example\.org resolves to 10\.1\.2\.3 is private/],
    ['https://rebind.example.org/keys', /resolves to 127\.0\.0\.1 is loopback/],
    ['https://v6.example.org/keys', /fd12::1 is unique local/],
    ['https://nowhere.example.org/keys', /cannot resolve nowhere\.example\.org: ENOTFOUND/],
  ];
  for (const [uri, why] of refused) {
    it(`refuses ${uri}`, async () => {
      const r = await checkJwksTarget(uri, DEFAULT_JWKS_FETCH_POLICY, dns);
      assert.equal(r.ok, false);
      assert.match(!r.ok ? r.error : '', why);
    });
  }

  it('accepts https to a public address and pins the checked address', async () => {
    const r = unwrap(await checkJwksTarget('https://jwks.example.org/keys', DEFAULT_JWKS_FETCH_POLICY, dns));
    assert.equal(r.address, '203.0.113.10');
    assert.equal(r.url.hostname, 'jwks.example.org');
  });

  it('allows private and loopback hosts, and plain http, only when the operator says so; metadata never', async () => {
    assert.ok((await checkJwksTarget('https://127.0.0.1/keys', PRIVATE_OK, dns)).ok);
    assert.ok((await checkJwksTarget('https://internal.example.org/keys', PRIVATE_OK, dns)).ok);
    assert.ok((await checkJwksTarget('http://jwks.example.org/keys', { allowPlainHttp: true, allowPrivateHosts: false }, dns)).ok);
    const both = { allowPlainHttp: true, allowPrivateHosts: true };
    assert.match(unwrapErr(await checkJwksTarget('http://169.254.169.254/keys', both, dns)), /metadata/);
    assert.match(unwrapErr(await checkJwksTarget('http://metadata/keys', both, dns)), /metadata host/);
  });

  it('does not resolve a URI it refuses for its scheme', async () => {
    const before = dns.asked.length;
    await checkJwksTarget('http://jwks.example.org/keys', DEFAULT_JWKS_FETCH_POLICY, dns);
    assert.equal(dns.asked.length, before);
  });
});

function unwrapErr(r: { ok: boolean; error?: string }): string {
  assert.equal(r.ok, false);
  return r.error ?? '';
}

describe('jwks fetcher against 127.0.0.1', () => {
  let server: Server;
  let port: number;
  let hits = 0;
  let handler: (res: import('node:http').ServerResponse) => void;

  beforeEach(async () => {
    hits = 0;
    handler = (res) => res.writeHead(200, { 'content-type': 'application/json' }).end(KEYS);
    server = createHttpServer((_req, res) => {
      hits++;
      handler(res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const causes = (log: ReturnType<typeof createRecordingLogger>) =>
    log.lines.filter((l) => l.level === 'warn').map((l) => String(l.fields.cause));

  it('by default refuses a loopback http server before connecting to it', async () => {
    const log = createRecordingLogger();
    const dns = fakeDns({ 'jwks.test': ['127.0.0.1'] });
    const f = createJwksFetcher({ clock: createManualClock(), log, timers: noTimers, lookup: dns, policy: { allowPlainHttp: true } });
    f.get(`http://jwks.test:${port}/keys`);
    f.get(`https://127.0.0.1:${port}/keys`);
    await f.refresh();
    assert.equal(hits, 0, 'no request reached the server');
    assert.deepEqual(dns.asked, ['jwks.test']);
    assert.equal(causes(log).length, 2);
    for (const c of causes(log)) assert.match(c, /^refused: .*loopback/);
    f.close();
  });

  it('connects to the address it checked, not to a fresh resolution of the name', async () => {
    // `jwks.test` exists only in the fake resolver, so the request can only succeed by using the checked address.
    const f = createJwksFetcher({
      clock: createManualClock(),
      log: createRecordingLogger(),
      timers: noTimers,
      lookup: fakeDns({ 'jwks.test': ['127.0.0.1'] }),
      policy: { allowPlainHttp: true, allowPrivateHosts: true },
    });
    f.get(`http://jwks.test:${port}/keys`);
    await f.refresh();
    assert.equal(f.get(`http://jwks.test:${port}/keys`), KEYS);
    assert.equal(hits, 1);
    f.close();
  });

  it('does not follow redirects, and gives up on a server slower than the time limit', async () => {
    const log = createRecordingLogger();
    const f = createJwksFetcher({
      clock: createManualClock(),
      log,
      timers: noTimers,
      timeoutMs: 300,
      policy: { allowPlainHttp: true, allowPrivateHosts: true },
    });
    handler = (res) => res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
    f.get(`http://127.0.0.1:${port}/redirect`);
    await f.refresh();
    assert.match(causes(log)[0] ?? '', /302: redirects are not followed \(to http:\/\/169\.254\.169\.254/);
    handler = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"keys":'); // and never more
    };
    const t0 = performance.now();
    await f.refresh();
    assert.ok(performance.now() - t0 < 5_000);
    assert.equal(causes(log).length, 2);
    assert.equal(typeof f.get(`http://127.0.0.1:${port}/redirect`), 'object', 'no keys, only the reason');
    f.close();
  });

  it('refuses a response larger than the limit, from its declared length or its bytes', async () => {
    const log = createRecordingLogger();
    const f = createJwksFetcher({
      clock: createManualClock(),
      log,
      timers: noTimers,
      maxBytes: 100,
      policy: { allowPlainHttp: true, allowPrivateHosts: true },
    });
    handler = (res) => res.writeHead(200, { 'content-length': '1000000' }).end('x'.repeat(1000000));
    f.get(`http://127.0.0.1:${port}/declared`);
    await f.refresh();
    handler = (res) => {
      res.writeHead(200);
      res.end('x'.repeat(1000));
    };
    await f.refresh();
    assert.deepEqual(causes(log), ['response larger than 100 bytes', 'response larger than 100 bytes']);
    f.close();
  });

  it('fetches over https from a pinned loopback address, checking the certificate against the URL host', async () => {
    const ca = createEphemeralCa({ trustDomain: mustTrustDomain('cluster.local'), clock: createManualClock(Date.now()) });
    const key = generateKeyPair('ec-p256');
    const cert = unwrap(
      ca.signSvid({ spiffeId: mustSpiffeId('spiffe://cluster.local/ns/a/sa/jwks'), publicKey: key.publicKey, dnsNames: ['jwks.test'] }),
    );
    const tls = createHttpsServer(
      { cert: cert.chainPem.join(''), key: key.privateKey.export({ type: 'pkcs8', format: 'pem' }) },
      (_req, res) => res.writeHead(200).end(KEYS),
    );
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    const tlsPort = (tls.address() as AddressInfo).port;
    try {
      const log = createRecordingLogger();
      const f = createJwksFetcher({
        clock: createManualClock(),
        log,
        timers: noTimers,
        ca: ca.trustBundle().pem,
        lookup: fakeDns({ 'jwks.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'] }),
        policy: { allowPrivateHosts: true },
      });
      f.get(`https://jwks.test:${tlsPort}/keys`);
      f.get(`https://other.test:${tlsPort}/keys`);
      await f.refresh();
      assert.equal(f.get(`https://jwks.test:${tlsPort}/keys`), KEYS);
      assert.match(
        String((f.get(`https://other.test:${tlsPort}/keys`) as { error?: string }).error),
        /altnames/,
        'the certificate does not name other.test',
      );
      assert.match(causes(log)[0] ?? '', /altnames|Hostname/i);
      f.close();
    } finally {
      tls.closeAllConnections();
      await new Promise<void>((r) => tls.close(() => r()));
      ca.close();
    }
  });
});
