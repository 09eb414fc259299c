import assert from 'node:assert/strict';
import { followSharedRotation, runGatedRotation, type RotationAdmin } from './gated-rotation.js';

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

describe('following a rotation the replicas drive', () => {
  const refuse = (m: string): never => {
    throw new Error(`refused: ${m}`);
  };

  it('prints each step with the replica driving it, across a change of leader, and exits 0 when complete', async () => {
    const views = [
      { id: 'r1', state: 'running', step: 'prepare' },
      { id: 'r1', state: 'running', step: 'bundle', driver: 'a', message: 'prepared' },
      { id: 'r1', state: 'running', step: 'bundle', driver: 'a', message: 'prepared' },
      { id: 'r1', state: 'running', step: 'bundle', driver: 'b', message: 'prepared' },
      { id: 'r1', state: 'complete', step: 'retire', driver: 'b', message: 'retired' },
    ] as const;
    let i = 0;
    let calls = 0;
    let out = '';
    const code = await followSharedRotation(
      {
        start: async (forceRetire, gateTimeoutMs) => {
          assert.deepEqual([forceRetire, gateTimeoutMs], [true, 5000]);
          return { ok: true, id: 'r1' };
        },
        // One answer in the middle is an error (the replica could not read etcd): followed through.
        view: async () => {
          const n = calls++;
          if (n === 1) return { ok: false, error: 'ca store unreachable' };
          return { ok: true, rotation: views[Math.min(i++, views.length - 1)]! };
        },
      },
      { timeoutMs: 5000, forceRetire: true, write: (t) => (out += t), refuse, followMs: 10_000, pollMs: 1 },
    );
    assert.equal(code, 0);
    assert.equal(
      out,
      'root rotation r1 recorded; the leader replica drives it\n' +
        'step prepare (running, driven by no leader yet)\n' +
        'step bundle (running, driven by a): prepared\n' +
        'step bundle (running, driven by b): prepared\n' +
        'step retire (complete, driven by b): retired\n' +
        'root rotation complete\n',
    );
  });

  it('exits 1 when held, and refuses (through the CLI) a request while another runs', async () => {
    let out = '';
    const held = await followSharedRotation(
      {
        start: async () => ({ ok: true, id: 'r2' }),
        view: async () => ({
          ok: true,
          rotation: { id: 'r2', state: 'held', step: 'bundle', driver: 'a', message: "gate 'bundle' not passed" },
        }),
      },
      { timeoutMs: 5000, forceRetire: false, write: (t) => (out += t), refuse, followMs: 10_000, pollMs: 1 },
    );
    assert.equal(held, 1);
    assert.match(out, /held; run the command again to resume from this step\n$/);
    await assert.rejects(
      followSharedRotation(
        {
          start: async () => ({ ok: false, error: 'root rotation r2 is in progress (step bundle, requested through a at t)' }),
          view: async () => ({ ok: true }),
        },
        { timeoutMs: 5000, forceRetire: false, write: () => {}, refuse, followMs: 10_000, pollMs: 1 },
      ),
      /refused: root rotation r2 is in progress/,
    );
  });
});
