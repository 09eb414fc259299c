import assert from 'node:assert/strict';
import { createManualClock } from '../lib/index.js';
import { proveRevocation, type SecretsView } from './revocation-proof.js';

describe('revocation proof', () => {
  const CRL_OLD = '-----BEGIN X509 CRL-----old';
  const CRL_NEW = '-----BEGIN X509 CRL-----new';
  const proxies = [
    { nodeId: 'a', workloadKey: 'ns/a' },
    { nodeId: 'b', workloadKey: 'ns/b' },
  ];
  /** A proxy's snapshot: its SDS version and the text its ROOTCA and default secrets hold. */
  const view = (version: string, rootCa: string, chain = 'chain-old'): SecretsView => ({
    version,
    holds: (name, text) => (name === 'ROOTCA' ? rootCa : chain) === text,
  });
  const req = { serialHex: 'AB:CD', holder: 'ns/b', timeoutMs: 1_000, rootCaName: 'ROOTCA', svidName: 'default' };

  it('counts a proxy only once it ACKed the SDS version of a snapshot carrying the new CRL (and the holder its fresh SVID)', async () => {
    const clock = createManualClock();
    let round = 0;
    const snaps = new Map<string, SecretsView>([
      ['a', view('v1', CRL_OLD)],
      ['b', view('v1', CRL_OLD)],
    ]);
    const acked = new Map([
      ['a', 'v1'],
      ['b', 'v1'],
    ]);
    let holderCert = { serialHex: 'abcd', chainPem: 'chain-old' };
    const proof = await proveRevocation(
      {
        proxies: () => proxies,
        ackedSecrets: (n) => acked.get(n),
        secretsOf: (n) => snaps.get(n),
        crlPem: () => CRL_NEW,
        chainOf: () => holderCert,
        clock,
        // Each poll moves the mesh one step: push, a's ACK, b's reissue, b's ACK.
        sleep: async (ms) => {
          clock.advance(ms);
          round++;
          if (round === 1) ['a', 'b'].forEach((n) => snaps.set(n, view('v2', CRL_NEW)));
          if (round === 2) acked.set('a', 'v2');
          if (round === 3) {
            holderCert = { serialHex: 'ef01', chainPem: 'chain-new' };
            snaps.set('b', view('v3', CRL_NEW, 'chain-new'));
            acked.set('b', 'v2'); // the CRL alone is not enough for the holder
          }
          if (round === 4) acked.set('b', 'v3');
        },
        pollMs: 50,
      },
      req,
    );
    assert.deepEqual(proof, { proxies: 2, acknowledged: ['a', 'b'], missing: [], elapsedMs: 200 });
  });

  it('stops at the timeout and names each proxy that had not acknowledged, with what it lacked', async () => {
    const clock = createManualClock();
    const proof = await proveRevocation(
      {
        proxies: () => proxies,
        ackedSecrets: (n) => (n === 'a' ? 'v1' : undefined),
        // a's snapshot has the CRL but a still runs v1 (built before the revocation, ACKed after it: not counted).
        secretsOf: (n) => (n === 'a' ? view('v2', CRL_NEW) : view('v2', CRL_OLD)),
        crlPem: () => CRL_NEW,
        chainOf: () => ({ serialHex: 'abcd', chainPem: 'chain-old' }),
        clock,
        sleep: async (ms) => clock.advance(ms),
      },
      req,
    );
    assert.equal(proof.elapsedMs, 1_000);
    assert.deepEqual(proof.acknowledged, []);
    assert.deepEqual(proof.missing, [
      { nodeId: 'a', reason: 'SDS version v2 sent, last ACKed v1' },
      { nodeId: 'b', reason: 'its snapshot does not yet carry the new CRL' },
    ]);
  });
});
