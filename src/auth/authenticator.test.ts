import assert from 'node:assert/strict';
import { createHmac, createPublicKey } from 'node:crypto';
import { Metadata } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { createEphemeralCa, generateKeyPair } from '../ca/index.js';
import { mustSpiffeId, mustTrustDomain } from '../identity/index.js';
import { createManualClock, unwrap } from '../lib/index.js';
import { createAuthenticator, createTokenVerifier, generateTokenKey, mintToken, trustSourceOf } from './index.js';

const td = mustTrustDomain('cluster.local');
const clock = createManualClock(Date.now());
const key = generateTokenKey();
const ca = createEphemeralCa({ trustDomain: td, clock });
const auth = createAuthenticator({
  tokens: createTokenVerifier({ key, trustDomain: td, clock }),
  trust: trustSourceOf(ca),
  trustDomain: td,
  clock,
});

const withBearer = (token: string) => {
  const md = new Metadata();
  md.set('authorization', `Bearer ${token}`);
  return { metadata: md };
};
const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
const mint = (o: Partial<Parameters<typeof mintToken>[0]> = {}) =>
  mintToken({ key, namespace: 'photo-ns', serviceAccount: 'photo-frontend', ttlMs: 3_600_000, clock, ...o });

describe('mintToken', () => {
  it('refuses to mint a token for the control plane service account of the root namespace', async () => {
    await assert.rejects(mint({ namespace: 'istio-system', serviceAccount: 'meshpilot' }), /istio-system\/meshpilot is reserved/);
    await assert.rejects(mint({ namespace: 'root', serviceAccount: 'meshpilot', rootNamespace: 'root' }), /reserved/);
    assert.ok(await mint({ namespace: 'default', serviceAccount: 'meshpilot' }));
  });
});

describe('authenticator', () => {
  it('turns a valid token into its service account’s SPIFFE ID', async () => {
    const r = await auth.authenticate(withBearer(await mint()));
    // With the token's expiry: a stream it opens ends then (exp is in whole seconds).
    const expected = Math.floor((clock.now() + 3_600_000) / 1000) * 1000;
    assert.deepEqual(unwrap(r), { identity: 'spiffe://cluster.local/ns/photo-ns/sa/photo-frontend', via: 'token', expiresAt: expected });
  });

  const refusals: [string, () => Promise<string>, RegExp][] = [
    ['an expired token', async () => mint({ ttlMs: 1_000, clock: createManualClock(clock.now() - 3_600_000) }), /expired/],
    ['a token signed by another key', async () => mint({ key: generateTokenKey() }), /bad-signature/],
    ['a token for another audience', async () => mint({ audience: 'someone-else' }), /wrong-audience/],
    ['a token from another issuer', async () => mint({ issuer: 'evil' }), /wrong-issuer/],
    [
      'a token for the control plane identity',
      // Minted where the root namespace was thought to be another (mintToken itself refuses the reserved one).
      async () => mint({ namespace: 'istio-system', serviceAccount: 'meshpilot', rootNamespace: 'another-root' }),
      /reserved-identity/,
    ],
    [
      'a token with alg none',
      async () =>
        `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: 'meshpilot', aud: 'meshpilot', sub: 'system:serviceaccount:a:b', exp: 9e9 })}.`,
      /bad-algorithm|malformed/,
    ],
    [
      'an HS256 token signed with the public key as secret',
      async () => {
        const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: 'meshpilot', aud: 'meshpilot', sub: 'system:serviceaccount:a:b', exp: 9e9 })}`;
        const secret = createPublicKey(key).export({ type: 'spki', format: 'pem' });
        return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
      },
      /bad-algorithm/,
    ],
    ['garbage', async () => 'not.a.jwt', /malformed/],
  ];
  for (const [what, make, kind] of refusals) {
    it(`refuses ${what}`, async () => {
      const r = await auth.authenticate(withBearer(await make()));
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : `${r.error.kind} ${r.error.message}`, kind);
    });
  }

  it('refuses a call with no credential', async () => {
    const r = await auth.authenticate({ metadata: new Metadata() });
    assert.equal(r.ok ? '' : r.error.kind, 'no-credential');
  });

  describe('client certificates', () => {
    const issue = (id = 'spiffe://cluster.local/ns/photo-ns/sa/photo-backend') => {
      const k = generateKeyPair('ec-p256');
      return unwrap(ca.signSvid({ spiffeId: mustSpiffeId(id), publicKey: k.publicKey }));
    };
    const peer = (der: Uint8Array) => ({ metadata: new Metadata(), peerCertificate: { raw: Buffer.from(der) } as PeerCertificate });

    it('accepts a valid mesh SVID', async () => {
      const svid = issue();
      const r = await auth.authenticate(peer(svid.certificateDer));
      assert.deepEqual(unwrap(r), {
        identity: 'spiffe://cluster.local/ns/photo-ns/sa/photo-backend',
        via: 'certificate',
        expiresAt: svid.notAfter,
        serial: svid.serialHex.toLowerCase().replace(/^0+/, ''),
      });
    });

    it('refuses a revoked SVID', async () => {
      const svid = issue();
      unwrap(await ca.revoke(svid.serialHex));
      const r = await auth.authenticate(peer(svid.certificateDer));
      assert.equal(r.ok ? '' : r.error.kind, 'revoked');
    });

    it('refuses an SVID from another mesh’s CA', async () => {
      const other = createEphemeralCa({ trustDomain: td, clock });
      const k = generateKeyPair('ec-p256');
      const svid = unwrap(other.signSvid({ spiffeId: mustSpiffeId('spiffe://cluster.local/ns/a/sa/b'), publicKey: k.publicKey }));
      const r = await auth.authenticate(peer(svid.certificateDer));
      assert.equal(r.ok ? '' : r.error.kind, 'bad-certificate');
      assert.match(r.ok ? '' : r.error.message, /not issued by this mesh/);
    });
  });
});
