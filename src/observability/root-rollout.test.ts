import assert from 'node:assert/strict';
import { awaitRootRollout } from './root-rollout.js';

function setup(o: { rootca: string; svid: string; version: string; acked: string; signed: boolean }) {
  let now = 0;
  return {
    proxies: () => [{ nodeId: 'n1', workloadKey: 'ns/w' }],
    ackedSecrets: () => o.acked,
    secretsOf: () => ({
      version: o.version,
      holds: (name: string, text: string) => (name === 'ROOTCA' ? o.rootca : o.svid).includes(text),
    }),
    rootsPem: () => ['OLD', 'NEW'],
    chainOf: () => ({ chainPem: 'LEAF2' }),
    signedByCurrent: () => o.signed,
    clock: { now: () => now },
    sleep: async (ms: number) => {
      now += ms;
    },
  };
}
const req = (stage: 'bundle' | 'svids') => ({ stage, timeoutMs: 200, rootCaName: 'ROOTCA', svidName: 'default' });

describe('root rollout gate', () => {
  it('bundle: passes only when the ACKed SDS version holds both roots', async () => {
    const ok = await awaitRootRollout(setup({ rootca: 'OLD NEW', svid: '', version: 'v2', acked: 'v2', signed: false }), req('bundle'));
    assert.deepEqual(ok.missing, []);
    const lacking = await awaitRootRollout(setup({ rootca: 'OLD', svid: '', version: 'v2', acked: 'v2', signed: false }), req('bundle'));
    assert.deepEqual(lacking.missing, [{ nodeId: 'n1', reason: 'its ROOTCA lacks 1 root(s) of the bundle' }]);
    const late = await awaitRootRollout(setup({ rootca: 'OLD NEW', svid: '', version: 'v2', acked: 'v1', signed: false }), req('bundle'));
    assert.deepEqual(late.missing, [{ nodeId: 'n1', reason: 'SDS version v2 sent, last ACKed v1' }]);
    assert.equal(late.elapsedMs, 200);
  });

  it('svids: passes only when the re-issued SVID is in the ACKed SDS version', async () => {
    const ok = await awaitRootRollout(setup({ rootca: 'OLD NEW', svid: 'LEAF2', version: 'v3', acked: 'v3', signed: true }), req('svids'));
    assert.deepEqual(ok.missing, []);
    const old = await awaitRootRollout(
      setup({ rootca: 'OLD NEW', svid: 'LEAF2', version: 'v3', acked: 'v3', signed: false }),
      req('svids'),
    );
    assert.deepEqual(old.missing, [{ nodeId: 'n1', reason: 'its workload has no SVID under the new root yet' }]);
    const unsent = await awaitRootRollout(
      setup({ rootca: 'OLD NEW', svid: 'LEAF1', version: 'v3', acked: 'v3', signed: true }),
      req('svids'),
    );
    assert.deepEqual(unsent.missing, [{ nodeId: 'n1', reason: 'its snapshot does not yet carry the re-issued SVID' }]);
  });
});
