import assert from 'node:assert/strict';
import { inputRandom, mutateBytes, mutateText, runFuzz, seededRandom } from './index.js';

const targets = new URL('./test-targets.js', import.meta.url);

describe('fuzz runner', function () {
  this.timeout(60_000);

  it('makes the same inputs from the same seed and index, and others from another seed', () => {
    const a = Array.from({ length: 20 }, (_, i) => mutateText('apiVersion: v1\nkind: Service\n', inputRandom(42, i), ['&a', '*a']));
    const b = Array.from({ length: 20 }, (_, i) => mutateText('apiVersion: v1\nkind: Service\n', inputRandom(42, i), ['&a', '*a']));
    const c = Array.from({ length: 20 }, (_, i) => mutateText('apiVersion: v1\nkind: Service\n', inputRandom(43, i), ['&a', '*a']));
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    const bytes = mutateBytes(new Uint8Array([0x30, 0x03, 0x01, 0x01, 0xff]), seededRandom(1), []);
    assert.deepEqual(bytes, mutateBytes(new Uint8Array([0x30, 0x03, 0x01, 0x01, 0xff]), seededRandom(1), []));
  });

  it('reports a crash with the seed, the input index and the input', async () => {
    const o = await runFuzz(targets, { seed: 5, iterations: 50, perInputMs: 5_000 }, 'crashesAtThree');
    assert.equal(o.ok, false);
    assert.ok(!o.ok);
    assert.equal(o.index, 3);
    assert.match(o.reason, /^seed 5, input 3: TypeError: cannot read properties of undefined/);
    assert.equal(typeof o.input, 'string');
  });

  it('stops an input that runs past the bound and names it (the worker is terminated, the run ends)', async () => {
    const o = await runFuzz(targets, { seed: 5, iterations: 50, perInputMs: 300 }, 'hangsAtTwo');
    assert.ok(!o.ok);
    assert.equal(o.index, 2);
    assert.match(o.reason, /input 2 ran longer than 300 ms \(seed 5\)/);
  });

  it('counts what a clean run accepted and refused', async () => {
    const o = await runFuzz(targets, { seed: 5, iterations: 200, perInputMs: 5_000 }, 'fine');
    assert.ok(o.ok);
    assert.equal(o.accepted + o.rejected, 200);
  });
});
