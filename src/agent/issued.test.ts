import assert from 'node:assert/strict';
import { createEphemeralCa, generateKeyPair } from '../ca/index.js';
import { mustSpiffeId } from '../identity/index.js';
import { createManualClock, unwrap } from '../lib/index.js';
import { backoffDelay } from './backoff.js';
import { acceptChain } from './issued.js';

const ID = mustSpiffeId('spiffe://cluster.local/ns/vm-ns/sa/vm-app');

describe('agent: checking the returned chain', () => {
  const clock = createManualClock(Date.now());
  const ca = createEphemeralCa({ clock });
  const keys = generateKeyPair('ec-p256');
  const keyPem = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const svid = unwrap(ca.signSvid({ spiffeId: ID, publicKey: keys.publicKey, ttlMs: 3_600_000 }));
  const response = [...svid.chainPem, ...ca.trustBundle().rootsPem];
  const want = { spiffeId: ID, publicKey: keys.publicKey, keyPem, now: clock.now() };

  it('splits a good response into the served chain and the roots', () => {
    const r = unwrap(acceptChain(response, want));
    assert.equal(r.serialHex, svid.serialHex);
    assert.equal(r.rootsPem.trim(), ca.trustBundle().pem.trim());
    assert.equal(r.chainPem.trim(), svid.chainPem.join('').trim());
    assert.equal(r.notAfter, svid.notAfter);
  });

  const refusals: [string, () => ReturnType<typeof acceptChain>, RegExp][] = [
    ['no root', () => acceptChain(svid.chainPem, want), /expected the leaf and at least one root|no root/],
    ['another key', () => acceptChain(response, { ...want, publicKey: generateKeyPair('ec-p256').publicKey }), /not for the key/],
    [
      'another identity',
      () => acceptChain(response, { ...want, spiffeId: mustSpiffeId('spiffe://cluster.local/ns/a/sa/b') }),
      /names URI:/,
    ],
    ['expired', () => acceptChain(response, { ...want, now: svid.notAfter }), /not valid now/],
    [
      'another CA’s root',
      () => acceptChain([...svid.chainPem, ...createEphemeralCa({ clock }).trustBundle().rootsPem], want),
      /not signed by/,
    ],
    ['garbage', () => acceptChain(['hello', 'world'], want), /no PEM certificates/],
  ];
  for (const [what, run, message] of refusals)
    it(`refuses ${what}`, () => {
      const r = run();
      assert.match(r.ok ? 'accepted' : r.error, message);
    });
});

describe('agent: backoff', () => {
  it('doubles from the initial delay up to the cap, with equal jitter', () => {
    const p = { initialMs: 250, maxMs: 5_000 };
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 50].map((n) => backoffDelay(n, p, 0)),
      [125, 250, 500, 1000, 2000, 2500, 2500, 2500],
    );
    assert.deepEqual(
      [1, 2, 6, 1000].map((n) => backoffDelay(n, p, 0.999999)),
      [250, 500, 5000, 5000],
    );
  });
});
