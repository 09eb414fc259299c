import assert from 'node:assert/strict';
import { runGatedRotation, type RotationAdmin } from './gated-rotation.js';

function fakeAdmin(o: { rotation: 'none' | 'prepared' | 'activated'; bundleLagging?: boolean; outstanding?: number }) {
  const calls: string[] = [];
  let rotation = o.rotation;
  const admin: RotationAdmin = {
    status: async () => ({ rotation }),
    async step(phase, force) {
      calls.push(`${phase}${force ? ' --force' : ''}`);
      if (phase === 'retire' && (o.outstanding ?? 0) > 0 && !force)
        return { ok: false, error: `${o.outstanding} unexpired, unrevoked SVID(s) signed by the old root are still outstanding` };
      rotation = phase === 'prepare' ? 'prepared' : phase === 'activate' ? 'activated' : 'none';
      return { ok: true };
    },
    async awaitRollout(stage, timeoutMs) {
      calls.push(`await ${stage}`);
      const lag = stage === 'bundle' && o.bundleLagging;
      return {
        proxies: 2,
        acknowledged: lag ? ['a'] : ['a', 'b'],
        missing: lag ? [{ nodeId: 'b', reason: 'SDS version v2 sent, last ACKed v1' }] : [],
        elapsedMs: lag ? timeoutMs : 12,
      };
    },
  };
  return { admin, calls };
}

describe('gated root rotation driver', () => {
  it('runs prepare, bundle gate, activate, SVID gate, retire, printing progress', async () => {
    const { admin, calls } = fakeAdmin({ rotation: 'none' });
    let out = '';
    const code = await runGatedRotation(admin, { timeoutMs: 1000, forceRetire: false, write: (t) => (out += t) });
    assert.equal(code, 0);
    assert.deepEqual(calls, ['prepare', 'await bundle', 'activate', 'await svids', 'retire']);
    assert.equal(
      out,
      'root rotation phase: none\nprepare: done\nwaiting until every connected proxy ACKed a trust bundle with both roots...\n' +
        '  2 proxies ACKed in 12 ms\nactivate: done\nwaiting until every connected proxy ACKed its SVID re-issued under the new root...\n' +
        '  2 proxies ACKed in 12 ms\nretire: done\nroot rotation complete\n',
    );
  });

  it('a lagging proxy stops the run before activate, naming it; the next run resumes from prepared', async () => {
    const lag = fakeAdmin({ rotation: 'none', bundleLagging: true });
    let out = '';
    assert.equal(await runGatedRotation(lag.admin, { timeoutMs: 500, forceRetire: false, write: (t) => (out += t) }), 1);
    assert.deepEqual(lag.calls, ['prepare', 'await bundle']);
    assert.match(
      out,
      / {2}not yet: b: SDS version v2 sent, last ACKed v1\nstopped after 500 ms; run the command again to resume from this phase\n$/,
    );
    const resumed = fakeAdmin({ rotation: 'prepared' });
    assert.equal(await runGatedRotation(resumed.admin, { timeoutMs: 500, forceRetire: false, write: () => {} }), 0);
    assert.deepEqual(resumed.calls, ['await bundle', 'activate', 'await svids', 'retire']);
  });

  it('retire refused while old-root SVIDs are outstanding; --force-retire retires', async () => {
    const held = fakeAdmin({ rotation: 'activated', outstanding: 3 });
    let out = '';
    assert.equal(await runGatedRotation(held.admin, { timeoutMs: 500, forceRetire: false, write: (t) => (out += t) }), 1);
    assert.match(out, /retire: refused: 3 unexpired.*\nrerun after they expire, revoke them, or pass --force-retire\n$/);
    const forced = fakeAdmin({ rotation: 'activated', outstanding: 3 });
    assert.equal(await runGatedRotation(forced.admin, { timeoutMs: 500, forceRetire: true, write: () => {} }), 0);
    assert.deepEqual(forced.calls, ['await svids', 'retire --force']);
  });
});
