import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { generateKeyPair, MAX_CSR_BYTES } from '../ca/index.js';
import { generateTokenKey, mintToken } from '../auth/index.js';
import { createManualClock } from '../lib/index.js';
import { IstioCertificateRequest, type IstioCertificateServiceClient } from '../proto/index.js';
import { opensslCsr, removeTempDir, tempDir } from '../ca/testing.js';
import { makeCsr } from './make-csr.js';
import { callRaw, CONTROL_PLANE_ID, createCertificate, DAY, HOUR, startCsrFixture, type CallOutcome, type CsrFixture } from './testing.js';

const ME = 'spiffe://cluster.local/ns/photo-ns/sa/photo-frontend';
const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
const csrFor = (uriSans: string[], o: { dnsSans?: string[]; requestCa?: boolean } = {}) =>
  makeCsr({ privateKey: generateKeyPair('ec-p256').privateKey, uriSans, ...o });

const newKeyPem = () => generateKeyPair('ec-p256').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
let tmp: string;
before(() => {
  tmp = tempDir();
});
after(() => removeTempDir(tmp));

function certs(chain: readonly string[]): X509Certificate[] {
  return chain.map((p) => new X509Certificate(p));
}

function expectStatus(r: CallOutcome, code: grpc.status): void {
  assert.equal(r.ok, false, 'expected a refusal, got a certificate');
  if (!r.ok) assert.equal(r.code, code, `expected ${grpc.status[code]}, got ${grpc.status[r.code]}: ${r.details}`);
}

describe('csr: CreateCertificate', function () {
  this.timeout(20_000);
  let f: CsrFixture;
  let client: IstioCertificateServiceClient;
  before(async () => {
    f = await startCsrFixture();
    client = f.client();
  });
  after(() => f.stop());

  it('issues the caller’s SVID for a token: chain leaf first, root last, default validity', async () => {
    const r = await createCertificate(client, { csr: csrFor([ME]) }, await f.token());
    assert.ok(r.ok, r.ok ? '' : r.details);
    const [leaf, root] = certs(r.response.certChain);
    assert.equal(r.response.certChain.length, 2);
    assert.equal(leaf!.subjectAltName, `URI:${ME}`);
    assert.ok(leaf!.verify(root!.publicKey));
    assert.ok(root!.verify(root!.publicKey), 'the last certificate is the self-signed root');
    assert.equal(r.response.certChain[1], f.ca.trustBundle().rootsPem[0]);
    const lifetime = Date.parse(leaf!.validTo) - f.clock.now();
    assert.ok(Math.abs(lifetime - HOUR) < 2_000, `default validity is one hour, got ${lifetime} ms`);
    const line = f.log.lines.find((l) => l.msg === 'certificate issued');
    assert.equal(line?.fields.identity, ME);
    assert.equal(line?.fields.via, 'token');
  });

  it('takes the requested validity, and clamps years to the maximum', async () => {
    const two = await createCertificate(client, { csr: csrFor([ME]), validityDuration: 7_200 }, await f.token());
    assert.ok(two.ok);
    const [leaf2] = certs(two.response.certChain);
    assert.ok(Math.abs(Date.parse(leaf2!.validTo) - f.clock.now() - 2 * HOUR) < 2_000);

    const years = await createCertificate(client, { csr: csrFor([ME]), validityDuration: 5 * 365 * 86_400 }, await f.token());
    assert.ok(years.ok, years.ok ? '' : years.details);
    const [leaf] = certs(years.response.certChain);
    const notAfter = Date.parse(leaf!.validTo);
    assert.ok(Math.abs(notAfter - (f.clock.now() + DAY)) < 2_000, `clamped to one day, notAfter ${leaf!.validTo}`);
    assert.ok(f.log.lines.some((l) => l.msg === 'certificate issued' && l.fields.clampedToMs === DAY));
  });

  describe('refuses, logs, issues nothing and keeps serving', () => {
    const cases: [string, grpc.status, string, () => Promise<CallOutcome>][] = [
      ['no token', grpc.status.UNAUTHENTICATED, 'unauthenticated', async () => createCertificate(client, { csr: csrFor([ME]) })],
      [
        'an expired token',
        grpc.status.UNAUTHENTICATED,
        'unauthenticated',
        async () => createCertificate(client, { csr: csrFor([ME]) }, await f.token({ clock: createManualClock(f.clock.now() - 2 * HOUR) })),
      ],
      [
        'a token signed by another key',
        grpc.status.UNAUTHENTICATED,
        'unauthenticated',
        async () => createCertificate(client, { csr: csrFor([ME]) }, await f.token({ key: generateTokenKey() })),
      ],
      [
        'an alg: none token',
        grpc.status.UNAUTHENTICATED,
        'unauthenticated',
        async () => {
          const exp = Math.floor(f.clock.now() / 1000) + 3600;
          const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: 'meshpilot', aud: 'meshpilot', sub: 'system:serviceaccount:photo-ns:photo-frontend', exp })}.`;
          return createCertificate(client, { csr: csrFor([ME]) }, none);
        },
      ],
      [
        'a token for another audience',
        grpc.status.UNAUTHENTICATED,
        'unauthenticated',
        async () => createCertificate(client, { csr: csrFor([ME]) }, await f.token({ audience: 'someone-else' })),
      ],
      [
        'a CSR with a bad signature',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () => {
          const der = Buffer.from(
            csrFor([ME])
              .replace(/-----[^-]+-----|\s/g, '')
              .trim(),
            'base64',
          );
          const i = der.indexOf(Buffer.from('photo-frontend'));
          der[i] = 'P'.charCodeAt(0);
          const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
          return createCertificate(client, { csr: pem }, await f.token());
        },
      ],
      [
        'two URI SANs',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () => createCertificate(client, { csr: csrFor([ME, 'spiffe://cluster.local/ns/photo-ns/sa/other']) }, await f.token()),
      ],
      [
        // X509-SVID §2: exactly one URI SAN; a CSR naming none is refused rather than filled in.
        'no URI SAN',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () => createCertificate(client, { csr: csrFor([]) }, await f.token()),
      ],
      [
        'a DNS SAN',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () => createCertificate(client, { csr: csrFor([ME], { dnsSans: ['photo.example'] }) }, await f.token()),
      ],
      [
        'the SPIFFE ID of another service account',
        grpc.status.PERMISSION_DENIED,
        'wrong-identity',
        async () => createCertificate(client, { csr: csrFor(['spiffe://cluster.local/ns/datastore-ns/sa/datastore']) }, await f.token()),
      ],
      [
        'another trust domain',
        grpc.status.PERMISSION_DENIED,
        'wrong-identity',
        async () => createCertificate(client, { csr: csrFor(['spiffe://evil.example/ns/photo-ns/sa/photo-frontend']) }, await f.token()),
      ],
      [
        'a .. path segment',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () =>
          createCertificate(
            client,
            { csr: csrFor(['spiffe://cluster.local/ns/photo-ns/sa/photo-frontend/../../datastore-ns/sa/datastore']) },
            await f.token(),
          ),
      ],
      [
        'a CA=true request',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () => createCertificate(client, { csr: csrFor([ME], { requestCa: true }) }, await f.token()),
      ],
      [
        'a CSR that is not PEM',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () => createCertificate(client, { csr: 'hello' }, await f.token()),
      ],
      [
        'a CSR larger than the limit',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () => createCertificate(client, { csr: csrFor([ME]) + 'x'.repeat(MAX_CSR_BYTES) }, await f.token()),
      ],
      [
        'a validity of zero (explicit on the wire)',
        grpc.status.INVALID_ARGUMENT,
        'bad-validity',
        async () => {
          const body = Buffer.from(
            IstioCertificateRequest.encode({ csr: csrFor([ME]), validityDuration: 0, metadata: undefined }).finish(),
          );
          return callRaw(client, Buffer.concat([body, Buffer.from([0x18, 0x00])]), await f.token());
        },
      ],
      [
        'a negative validity',
        grpc.status.INVALID_ARGUMENT,
        'bad-validity',
        async () => createCertificate(client, { csr: csrFor([ME]), validityDuration: -3600 }, await f.token()),
      ],
      [
        'an RSA 1024 key',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () => {
          const k = generateKeyPairSync('rsa', { modulusLength: 1024 });
          return createCertificate(client, { csr: makeCsr({ privateKey: k.privateKey, uriSans: [ME] }) }, await f.token());
        },
      ],
      [
        'a P-192 key',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () => {
          const k = generateKeyPairSync('ec', { namedCurve: 'prime192v1' });
          return createCertificate(client, { csr: makeCsr({ privateKey: k.privateKey, uriSans: [ME] }) }, await f.token());
        },
      ],
      [
        'an impersonation request in metadata',
        grpc.status.PERMISSION_DENIED,
        'impersonation',
        async () =>
          createCertificate(
            client,
            { csr: csrFor([ME]), metadata: { ImpersonatedIdentity: 'spiffe://cluster.local/ns/datastore-ns/sa/datastore' } },
            await f.token(),
          ),
      ],
      [
        'an IP SAN',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () =>
          createCertificate(client, { csr: opensslCsr(tmp, newKeyPem(), [`subjectAltName=URI:${ME},IP:10.0.0.1`]) }, await f.token()),
      ],
      [
        'an email SAN',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () =>
          createCertificate(
            client,
            { csr: opensslCsr(tmp, newKeyPem(), [`subjectAltName=URI:${ME},email:a@example.org`]) },
            await f.token(),
          ),
      ],
      [
        'keyCertSign and cRLSign key usage',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () =>
          createCertificate(
            client,
            { csr: opensslCsr(tmp, newKeyPem(), [`subjectAltName=URI:${ME}`, 'keyUsage=critical,keyCertSign,cRLSign']) },
            await f.token(),
          ),
      ],
      [
        'a name constraints request',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () =>
          createCertificate(
            client,
            { csr: opensslCsr(tmp, newKeyPem(), [`subjectAltName=URI:${ME}`, 'nameConstraints=critical,permitted;DNS:example.org']) },
            await f.token(),
          ),
      ],
      [
        'bytes after the DER',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () => {
          const der = Buffer.from(csrFor([ME]).replace(/-----[^-]+-----|\s/g, ''), 'base64');
          const padded = Buffer.concat([der, Buffer.from([0, 0])]).toString('base64');
          return createCertificate(
            client,
            { csr: `-----BEGIN CERTIFICATE REQUEST-----\n${padded}\n-----END CERTIFICATE REQUEST-----\n` },
            await f.token(),
          );
        },
      ],
      [
        'a second PEM block',
        grpc.status.INVALID_ARGUMENT,
        'bad-csr',
        async () => createCertificate(client, { csr: csrFor([ME]) + f.ca.trustBundle().pem }, await f.token()),
      ],
      [
        'a token for the control plane identity',
        grpc.status.UNAUTHENTICATED,
        'unauthenticated',
        async () =>
          createCertificate(
            client,
            { csr: csrFor([CONTROL_PLANE_ID]) },
            await f.token({ namespace: 'istio-system', serviceAccount: 'meshpilot', rootNamespace: 'another-root' }),
          ),
      ],
      [
        'the control plane certificate as client certificate',
        grpc.status.PERMISSION_DENIED,
        'reserved-identity',
        async () => {
          const cp = f.issue(CONTROL_PLANE_ID);
          return createCertificate(f.client({ keyPem: cp.keyPem, chainPem: cp.svid.chainPem.join('') }), {
            csr: csrFor([CONTROL_PLANE_ID]),
          });
        },
      ],
      [
        'a garbled protobuf',
        grpc.status.INVALID_ARGUMENT,
        'garbled',
        async () => callRaw(client, Buffer.from([0x0a, 0x32, 0x41, 0x41]), await f.token()),
      ],
    ];

    for (const [what, code, kind, call] of cases) {
      it(`${what}: ${grpc.status[code]}`, async () => {
        const signed = f.signCalls();
        const lines = f.log.lines.length;
        expectStatus(await call(), code);
        assert.equal(f.signCalls(), signed, 'the CA was not asked to sign');
        const logged = f.log.lines.slice(lines).filter((l) => l.msg === 'csr rejected');
        assert.equal(logged.length, 1, 'one log line');
        assert.equal(logged[0]!.fields.kind, kind);
        assert.equal(typeof logged[0]!.fields.cause, 'string');
        const next = await createCertificate(client, { csr: csrFor([ME]) }, await f.token());
        assert.ok(next.ok, 'the server keeps serving');
      });
    }

    it('the caller hears a short stable message, the log the whole reason', async () => {
      const lines = f.log.lines.length;
      const r = await createCertificate(client, { csr: csrFor([ME, ME + '2']) }, await f.token());
      assert.ok(!r.ok && r.details === 'invalid certificate request');
      const line = f.log.lines.slice(lines).find((l) => l.msg === 'csr rejected');
      assert.match(String(line?.fields.cause), /2 URI SANs/);
      assert.equal(line?.fields.identity, ME);
    });

    it('an oversized protobuf: RESOURCE_EXHAUSTED from the receive limit', async () => {
      const r = await createCertificate(client, { csr: 'x'.repeat(5 * 1024 * 1024) }, await f.token());
      expectStatus(r, grpc.status.RESOURCE_EXHAUSTED);
      assert.ok((await createCertificate(client, { csr: csrFor([ME]) }, await f.token())).ok);
    });
  });

  describe('client certificate credentials over TLS', () => {
    it('issues to a caller presenting a valid SVID, for that SVID’s identity', async () => {
      const id = 'spiffe://cluster.local/ns/vm/sa/vm-app';
      const { svid, keyPem } = f.issue(id);
      const c = f.client({ keyPem, chainPem: svid.chainPem.join('') });
      const r = await createCertificate(c, { csr: csrFor([id]) });
      assert.ok(r.ok, r.ok ? '' : r.details);
      assert.equal(certs(r.response.certChain)[0]!.subjectAltName, `URI:${id}`);
      assert.equal(f.log.lines.filter((l) => l.msg === 'certificate issued').at(-1)?.fields.via, 'certificate');
    });

    it('refuses a revoked SVID used as credential: UNAUTHENTICATED', async () => {
      const id = 'spiffe://cluster.local/ns/vm/sa/revoked-app';
      const { svid, keyPem } = f.issue(id);
      await f.ca.revoke(svid.serialHex);
      const signed = f.signCalls();
      const r = await createCertificate(f.client({ keyPem, chainPem: svid.chainPem.join('') }), { csr: csrFor([id]) });
      expectStatus(r, grpc.status.UNAUTHENTICATED);
      assert.equal(f.signCalls(), signed);
      assert.equal(f.log.lines.at(-1)?.fields.authKind, 'revoked');
    });

    it('a token wins over the client certificate: a valid SVID cannot be used to ask for the token’s identity', async () => {
      const { svid, keyPem } = f.issue('spiffe://cluster.local/ns/vm/sa/vm-app');
      const c = f.client({ keyPem, chainPem: svid.chainPem.join('') });
      const r = await createCertificate(c, { csr: csrFor(['spiffe://cluster.local/ns/vm/sa/vm-app']) }, await f.token());
      expectStatus(r, grpc.status.PERMISSION_DENIED);
    });
  });
});

describe('csr: availability and abuse', function () {
  this.timeout(60_000);

  it('CA not ready: UNAVAILABLE, nothing issued', async () => {
    const f = await startCsrFixture();
    try {
      f.setNotReady(true);
      const r = await createCertificate(f.client(), { csr: csrFor([ME]) }, await f.token());
      expectStatus(r, grpc.status.UNAVAILABLE);
      assert.equal(f.log.lines.at(-1)?.fields.kind, 'ca-not-ready');
      f.setNotReady(false);
      assert.ok((await createCertificate(f.client(), { csr: csrFor([ME]) }, await f.token())).ok);
    } finally {
      await f.stop();
    }
  });

  it('a CA whose signing chain expired: UNAVAILABLE, never a certificate from expired material', async () => {
    const f = await startCsrFixture({ ca: { rootValidityMs: 2 * HOUR } });
    try {
      f.clock.advance(3 * HOUR);
      const r = await createCertificate(f.client(), { csr: csrFor([ME]) }, await f.token());
      expectStatus(r, grpc.status.UNAVAILABLE);
      assert.match(String(f.log.lines.at(-1)?.fields.cause), /expired/);
    } finally {
      await f.stop();
    }
  });

  it('the same CSR replayed thousands of times: rate limited per identity, memory bounded', async () => {
    const f = await startCsrFixture({ rateLimit: { burst: 10, perSecond: 1, maxKeys: 100 } });
    try {
      const client = f.client();
      const token = await f.token();
      const csr = csrFor([ME]);
      const outcomes: CallOutcome[] = [];
      for (let batch = 0; batch < 20; batch++)
        outcomes.push(...(await Promise.all(Array.from({ length: 100 }, () => createCertificate(client, { csr }, token)))));
      const issued = outcomes.filter((o) => o.ok).length;
      const limited = outcomes.filter((o) => !o.ok && o.code === grpc.status.RESOURCE_EXHAUSTED).length;
      assert.equal(issued, 10, 'the burst, then nothing while the clock stands still');
      assert.equal(limited, 2_000 - 10);
      assert.equal(f.signCalls(), 10, 'refused requests never reach the CA');
      assert.equal(f.service.rateLimitBuckets(), 1);
      const logged = f.log.lines.filter((l) => l.fields.kind === 'rate-limited');
      assert.deepEqual(
        logged.map((l) => l.fields.refusedInRow),
        [1, 10, 100, 1000],
        'the 1st, 10th, 100th and 1000th refusal in a row are logged, not all 1990',
      );
      // ... but every one is counted (meshpilot_csr_refused_total{reason="rate-limited"}).
      assert.deepEqual(f.counted(), { issued: 10, refused: { 'rate-limited': 1_990 } });
      // One second later, one more token.
      f.clock.advance(1_000);
      assert.ok((await createCertificate(client, { csr }, token)).ok);
      expectStatus(await createCertificate(client, { csr }, token), grpc.status.RESOURCE_EXHAUSTED);
    } finally {
      await f.stop();
    }
  });

  it('many identities: the bucket map stays within its bound', async () => {
    const f = await startCsrFixture({ rateLimit: { burst: 10, perSecond: 1, maxKeys: 20 } });
    try {
      const client = f.client();
      for (let i = 0; i < 60; i++) {
        const sa = `sa-${i}`;
        const token = await f.token({ serviceAccount: sa });
        const r = await createCertificate(client, { csr: csrFor([`spiffe://cluster.local/ns/photo-ns/sa/${sa}`]) }, token);
        assert.ok(r.ok);
        assert.ok(f.service.rateLimitBuckets() <= 20);
      }
    } finally {
      await f.stop();
    }
  });

  it('a token for the right audience but minted elsewhere in time still needs a valid signature (sanity)', async () => {
    const f = await startCsrFixture();
    try {
      const t = await mintToken({
        key: generateTokenKey(),
        namespace: 'photo-ns',
        serviceAccount: 'photo-frontend',
        ttlMs: HOUR,
        clock: f.clock,
      });
      expectStatus(await createCertificate(f.client(), { csr: csrFor([ME]) }, t), grpc.status.UNAUTHENTICATED);
    } finally {
      await f.stop();
    }
  });
});
