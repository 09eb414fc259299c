// Federation against real HTTPS servers on loopback: our bundle endpoint served with a real
// SVID, and hostile endpoints for each kind of bad input. Every refused fetch keeps the
// last good bundle, is logged with its reason and counted.
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import type { RequestListener } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEphemeralCa, generateKeyPair, type CertificateAuthority } from '../ca/index.js';
import { mustSpiffeId, mustTrustDomain } from '../identity/index.js';
import { systemClock } from '../lib/index.js';
import { createRecordingLogger } from '../observability/index.js';
import {
  createFederatedBundles,
  encodeSpiffeBundle,
  fetchBundle,
  parseSpiffeBundle,
  startBundleEndpoint,
  type BundleEndpoint,
  type BundleProblemKind,
  type FederatedBundles,
} from './index.js';

const B_ENDPOINT_ID = 'spiffe://b.example/ns/istio-system/sa/meshpilot';
const timers = {
  setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms).unref(),
  clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout),
};

function svidFor(ca: CertificateAuthority, id: string) {
  const keys = generateKeyPair('ec-p256');
  const r = ca.signSvid({ spiffeId: mustSpiffeId(id), publicKey: keys.publicKey, ttlMs: 3_600_000, dnsNames: ['localhost'] });
  assert.ok(r.ok);
  return {
    certificate: Buffer.from(r.value.chainPem.join('')),
    privateKey: Buffer.from(keys.privateKey.export({ type: 'pkcs8', format: 'pem' })),
  };
}

/** An HTTPS server on loopback answering every request with `handler`, presenting `identity`. */
async function hostile(identity: { certificate: Buffer; privateKey: Buffer }, handler: RequestListener) {
  const server = https.createServer({ cert: identity.certificate, key: identity.privateKey }, handler);
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('SPIFFE bundle format', () => {
  const ca = createEphemeralCa({ trustDomain: mustTrustDomain('b.example') });
  after(() => ca.close());

  it('round-trips the roots with sequence and refresh hint, one x509-svid key per root with its x5c', () => {
    const text = encodeSpiffeBundle({ rootsPem: ca.trustBundle().rootsPem, sequence: 7, refreshHintSeconds: 60 });
    const doc = JSON.parse(text) as { keys: Record<string, unknown>[]; spiffe_sequence: number; spiffe_refresh_hint: number };
    assert.equal(doc.spiffe_sequence, 7);
    assert.equal(doc.spiffe_refresh_hint, 60);
    assert.equal(doc.keys.length, 1);
    assert.equal(doc.keys[0]!.use, 'x509-svid');
    assert.equal(doc.keys[0]!.kty, 'EC');
    assert.equal((doc.keys[0]!.x5c as string[]).length, 1);
    const back = parseSpiffeBundle(text);
    assert.ok(back.ok);
    assert.deepEqual(back.value.rootsPem, ca.trustBundle().rootsPem);
    assert.equal(back.value.sequence, 7);
    assert.equal(back.value.refreshHintSeconds, 60);
  });

  const bad: [string, (d: Record<string, unknown>) => unknown, BundleProblemKind, RegExp][] = [
    ['not JSON', () => '{"keys": [', 'malformed', /not JSON/],
    ['keys missing', () => ({ spiffe_sequence: 1 }), 'malformed', /keys: must be a list/],
    ['no keys', (d) => ({ ...d, keys: [] }), 'empty', /no x509-svid key/],
    ['only jwt-svid keys', (d) => ({ ...d, keys: [{ use: 'jwt-svid', kty: 'EC', kid: 'k' }] }), 'empty', /no x509-svid key/],
    ['a key with use sig', (d) => ({ ...d, keys: [{ ...(d.keys as object[])[0], use: 'sig' }] }), 'bad-key-use', /keys\[0\]\.use: "sig"/],
    ['a key without use', (d) => ({ ...d, keys: [{ ...(d.keys as object[])[0], use: undefined }] }), 'bad-key-use', /must be set/],
    [
      'two certificates in x5c',
      (d) => ({ ...d, keys: [{ ...(d.keys as object[])[0], x5c: ['AA==', 'AA=='] }] }),
      'bad-certificate',
      /exactly one/,
    ],
    [
      'garbage in x5c',
      (d) => ({ ...d, keys: [{ ...(d.keys as object[])[0], x5c: ['bm90IGEgY2VydA=='] }] }),
      'bad-certificate',
      /not a DER certificate/,
    ],
    [
      'key members that do not match x5c',
      (d) => ({ ...d, keys: [{ ...(d.keys as object[])[0], x: 'AAAA' }] }),
      'bad-certificate',
      /keys\[0\]\.x/,
    ],
    ['negative sequence', (d) => ({ ...d, spiffe_sequence: -1 }), 'malformed', /spiffe_sequence/],
  ];
  for (const [name, edit, kind, message] of bad) {
    it(`refuses ${name}`, () => {
      const good = JSON.parse(encodeSpiffeBundle({ rootsPem: ca.trustBundle().rootsPem, sequence: 1, refreshHintSeconds: 1 })) as Record<
        string,
        unknown
      >;
      const edited = edit(good);
      const r = parseSpiffeBundle(typeof edited === 'string' ? edited : JSON.stringify(edited));
      assert.ok(!r.ok);
      assert.equal(r.error.kind, kind);
      assert.match(r.error.message, message);
    });
  }

  it('skips jwt-svid keys beside the roots', () => {
    const good = JSON.parse(encodeSpiffeBundle({ rootsPem: ca.trustBundle().rootsPem, sequence: 1, refreshHintSeconds: 1 })) as {
      keys: object[];
    };
    good.keys.push({ use: 'jwt-svid', kty: 'EC', kid: 'x' });
    const r = parseSpiffeBundle(JSON.stringify(good));
    assert.ok(r.ok);
    assert.equal(r.value.skippedJwtKeys, 1);
    assert.equal(r.value.rootsPem.length, 1);
  });
});

describe('federated bundle refresh schedule', () => {
  it('fetches at start, then after the refresh hint (clamped), and retries sooner after a failure', async () => {
    const ca = createEphemeralCa({ trustDomain: mustTrustDomain('b.example') });
    const dir = mkdtempSync(join(tmpdir(), 'meshpilot-fed-'));
    try {
      writeFileSync(join(dir, 'b.pem'), ca.trustBundle().pem);
      const scheduled: { fn: () => void; ms: number }[] = [];
      const fake = { setTimeout: (fn: () => void, ms: number) => scheduled.push({ fn, ms }), clearTimeout: () => undefined };
      const answers: Awaited<ReturnType<typeof fetchBundle>>[] = [
        { ok: true, value: { rootsPem: ca.trustBundle().rootsPem, refreshHintSeconds: 7, skippedJwtKeys: 0 } },
        { ok: false, error: { kind: 'unreachable', message: 'down' } },
        { ok: true, value: { rootsPem: ca.trustBundle().rootsPem, refreshHintSeconds: 100_000, skippedJwtKeys: 0 } },
      ];
      const r = createFederatedBundles({
        domains: [
          {
            trustDomain: 'b.example',
            bundleEndpointUrl: 'https://127.0.0.1:1/',
            endpointSpiffeId: B_ENDPOINT_ID,
            trustBundleFile: join(dir, 'b.pem'),
          },
        ],
        clock: systemClock,
        timers: fake,
        log: createRecordingLogger(),
        policy: { retryMs: 2_000 },
        fetch: () => Promise.resolve(answers.shift()!),
      });
      assert.ok(r.ok);
      const step = async () => {
        const next = scheduled.at(-1)!;
        next.fn();
        await new Promise((res) => setImmediate(res));
        await new Promise((res) => setImmediate(res));
      };
      assert.equal(scheduled[0]!.ms, 0, 'first fetch at once');
      await step();
      assert.equal(scheduled.at(-1)!.ms, 7_000, 'then after the hint');
      await step();
      assert.equal(scheduled.at(-1)!.ms, 2_000, 'a failure retries after retryMs (shorter than the hint)');
      await step();
      assert.equal(scheduled.at(-1)!.ms, 3_600_000, 'a huge hint is clamped to the maximum');
      r.value.close();
    } finally {
      ca.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('federated bundle sequence', () => {
  it('refuses different roots with a lower spiffe_sequence (an old bundle served again), keeping the held one', async () => {
    const b = createEphemeralCa({ trustDomain: mustTrustDomain('b.example') });
    const old = createEphemeralCa({ trustDomain: mustTrustDomain('b.example') });
    const dir = mkdtempSync(join(tmpdir(), 'meshpilot-fed-'));
    try {
      writeFileSync(join(dir, 'b.json'), encodeSpiffeBundle({ rootsPem: b.trustBundle().rootsPem, sequence: 50, refreshHintSeconds: 1 }));
      const refused: string[] = [];
      const r = createFederatedBundles({
        domains: [
          {
            trustDomain: 'b.example',
            bundleEndpointUrl: 'https://127.0.0.1:1/',
            endpointSpiffeId: B_ENDPOINT_ID,
            trustBundleFile: join(dir, 'b.json'),
          },
        ],
        clock: systemClock,
        timers: { setTimeout: () => undefined, clearTimeout: () => undefined },
        log: createRecordingLogger(),
        stats: { onRefused: (_td, reason) => refused.push(reason) },
        fetch: () => Promise.resolve({ ok: true, value: { rootsPem: old.trustBundle().rootsPem, sequence: 49, skippedJwtKeys: 0 } }),
      });
      assert.ok(r.ok);
      const res = await r.value.refresh('b.example');
      assert.ok(!res.ok);
      assert.equal(res.error.kind, 'rollback');
      assert.deepEqual(r.value.list()[0]!.rootsPem, b.trustBundle().rootsPem);
      assert.deepEqual(refused, ['rollback']);
      r.value.close();
    } finally {
      b.close();
      old.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('federated bundles over https_spiffe', function () {
  this.timeout(20_000);
  let b: CertificateAuthority;
  let c: CertificateAuthority;
  let endpoint: BundleEndpoint;
  let dir: string;
  const closers: (() => unknown)[] = [];
  let bIdentity: { certificate: Buffer; privateKey: Buffer };
  let identityChanged = () => undefined as unknown;

  beforeEach(async () => {
    b = createEphemeralCa({ trustDomain: mustTrustDomain('b.example') });
    c = createEphemeralCa({ trustDomain: mustTrustDomain('c.example') });
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-fed-'));
    bIdentity = svidFor(b, B_ENDPOINT_ID);
    endpoint = await startBundleEndpoint({
      host: '127.0.0.1',
      port: 0,
      identity: {
        current: () => bIdentity,
        onChange: (cb) => {
          identityChanged = cb;
          return () => undefined;
        },
      },
      trustBundle: () => b.trustBundle(),
      refreshHintSeconds: 1,
      clock: systemClock,
      log: createRecordingLogger(),
    });
    writeFileSync(join(dir, 'b.json'), encodeSpiffeBundle({ rootsPem: b.trustBundle().rootsPem, sequence: 1, refreshHintSeconds: 1 }));
  });
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
    await endpoint.close();
    b.close();
    c.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function federate(url: string, endpointId = B_ENDPOINT_ID) {
    const log = createRecordingLogger();
    const refused: string[] = [];
    const r = createFederatedBundles({
      domains: [{ trustDomain: 'b.example', bundleEndpointUrl: url, endpointSpiffeId: endpointId, trustBundleFile: join(dir, 'b.json') }],
      clock: systemClock,
      timers,
      log,
      stats: { onRefused: (_td, reason) => refused.push(reason) },
      // Refresh only when the test asks.
      policy: { minMs: 3_600_000, defaultMs: 3_600_000, maxMs: 3_600_000, retryMs: 3_600_000 },
    });
    assert.ok(r.ok, r.ok ? '' : r.error);
    const fed: FederatedBundles = r.value;
    closers.push(() => fed.close());
    return { fed, log, refused };
  }

  async function expectRefused(url: string, kind: BundleProblemKind, message: RegExp, endpointId?: string) {
    const { fed, log, refused } = federate(url, endpointId);
    const before = fed.list()[0]!;
    const r = await fed.refresh('b.example');
    assert.ok(!r.ok, 'the fetch should be refused');
    assert.equal(r.error.kind, kind, r.error.message);
    assert.match(r.error.message, message);
    assert.deepEqual(fed.list()[0]!.rootsPem, before.rootsPem, 'the last good bundle is kept');
    assert.ok(refused.includes(kind), 'counted with its reason');
    const line = log.lines.find((l) => l.msg === 'federated bundle refused');
    assert.equal(line?.fields.reason, kind);
    assert.equal(line?.fields.trustDomain, 'b.example');
  }

  it('serves the bundle and takes a root rotation: both roots while prepared, authenticated with the previous bundle', async () => {
    const { fed } = federate(`https://127.0.0.1:${endpoint.port}/`);
    assert.equal((await fed.refresh('b.example')).ok, true);
    const first = fed.list()[0]!;
    assert.equal(first.rootsPem.length, 1);
    assert.ok(first.sequence! > 1);
    const changes: string[] = [];
    fed.onChange((td) => changes.push(td));
    assert.ok((await b.rotateRoot('prepare')).ok);
    const r = await fed.refresh('b.example');
    assert.ok(r.ok && r.value === 'updated');
    assert.equal(fed.list()[0]!.rootsPem.length, 2);
    assert.deepEqual(changes, ['b.example']);
    assert.ok(fed.list()[0]!.sequence! > first.sequence!);
    // Activate: the endpoint now serves with an SVID of the new root, which the held bundle (both roots) authenticates.
    assert.ok((await b.rotateRoot('activate')).ok);
    bIdentity = svidFor(b, B_ENDPOINT_ID);
    identityChanged();
    assert.ok((await b.rotateRoot('retire', { force: true })).ok);
    const retired = await fed.refresh('b.example');
    assert.ok(retired.ok && retired.value === 'updated', JSON.stringify(retired));
    assert.equal(fed.list()[0]!.rootsPem.length, 1);
    assert.notEqual(fed.list()[0]!.rootsPem[0], first.rootsPem[0]);
  });

  it('refuses an endpoint presenting the wrong SPIFFE ID', async () => {
    const s = await hostile(svidFor(b, 'spiffe://b.example/ns/default/sa/someone-else'), (_q, res) => res.end('{}'));
    closers.push(s.close);
    await expectRefused(s.url, 'wrong-endpoint-id', /presented spiffe:\/\/b\.example\/ns\/default\/sa\/someone-else, expected/);
  });

  it('refuses an endpoint whose certificate the held bundle does not authenticate', async () => {
    const s = await hostile(svidFor(c, 'spiffe://c.example/ns/istio-system/sa/meshpilot'), (_q, res) => res.end('{}'));
    closers.push(s.close);
    await expectRefused(s.url, 'untrusted-endpoint', /does not chain/);
  });

  it('refuses a malformed bundle', async () => {
    const s = await hostile(svidFor(b, B_ENDPOINT_ID), (_q, res) => res.end('<html>not a bundle</html>'));
    closers.push(s.close);
    await expectRefused(s.url, 'malformed', /not JSON/);
  });

  it('refuses an empty bundle', async () => {
    const s = await hostile(svidFor(b, B_ENDPOINT_ID), (_q, res) => res.end('{"keys": []}'));
    closers.push(s.close);
    await expectRefused(s.url, 'empty', /no x509-svid key/);
  });

  it("refuses another trust domain's bundle served by the right endpoint", async () => {
    const cBundle = encodeSpiffeBundle({ rootsPem: c.trustBundle().rootsPem, sequence: 99, refreshHintSeconds: 1 });
    const s = await hostile(svidFor(b, B_ENDPOINT_ID), (_q, res) => res.end(cBundle));
    closers.push(s.close);
    await expectRefused(s.url, 'wrong-trust-domain', /not this trust domain's bundle/);
  });

  it('refuses keys whose use is not x509-svid', async () => {
    const doc = JSON.parse(encodeSpiffeBundle({ rootsPem: b.trustBundle().rootsPem, sequence: 5, refreshHintSeconds: 1 })) as {
      keys: { use: string }[];
    };
    doc.keys[0]!.use = 'enc';
    const s = await hostile(svidFor(b, B_ENDPOINT_ID), (_q, res) => res.end(JSON.stringify(doc)));
    closers.push(s.close);
    await expectRefused(s.url, 'bad-key-use', /"enc" is not x509-svid/);
  });

  it('refuses a redirect to another host', async () => {
    const s = await hostile(svidFor(b, B_ENDPOINT_ID), (_q, res) => res.writeHead(302, { location: 'https://127.0.0.2:8443/' }).end());
    closers.push(s.close);
    await expectRefused(s.url, 'redirect', /redirected \(302\) to https:\/\/127\.0\.0\.2:8443\//);
  });

  it('refuses an oversized response, declared or streamed', async () => {
    const big = Buffer.alloc(300 * 1024, 0x20);
    const declared = await hostile(svidFor(b, B_ENDPOINT_ID), (_q, res) => res.writeHead(200, { 'content-length': big.length }).end(big));
    closers.push(declared.close);
    await expectRefused(declared.url, 'oversized', /declares 307200 bytes/);
    const streamed = await hostile(svidFor(b, B_ENDPOINT_ID), (_q, res) => {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      res.end(big);
    });
    closers.push(streamed.close);
    await expectRefused(streamed.url, 'oversized', /larger than the limit/);
  });

  it('keeps the last good bundle when the endpoint is down', async () => {
    const port = endpoint.port;
    await endpoint.close();
    endpoint = { port, close: async () => undefined };
    await expectRefused(`https://127.0.0.1:${port}/`, 'unreachable', /ECONNREFUSED/);
  });

  it('refuses an unusable initial bundle file at start, naming the domain and the file', () => {
    writeFileSync(join(dir, 'bad.json'), '{"keys": []}');
    const r = createFederatedBundles({
      domains: [{ trustDomain: 'b.example', trustBundleFile: join(dir, 'bad.json') }],
      clock: systemClock,
      timers,
      log: createRecordingLogger(),
    });
    assert.ok(!r.ok);
    assert.match(r.error, /b\.example: trustBundleFile .*bad\.json: the bundle holds no x509-svid key/);
  });

  it('reads a static bundle from PEM roots and never fetches', async () => {
    writeFileSync(join(dir, 'c.pem'), c.trustBundle().pem);
    const r = createFederatedBundles({
      domains: [{ trustDomain: 'c.example', trustBundleFile: join(dir, 'c.pem') }],
      clock: systemClock,
      timers,
      log: createRecordingLogger(),
    });
    assert.ok(r.ok);
    closers.push(() => r.value.close());
    assert.deepEqual(r.value.list()[0]!.rootsPem, c.trustBundle().rootsPem);
    assert.deepEqual(await r.value.refresh('c.example'), { ok: true, value: 'unchanged' });
  });
});
