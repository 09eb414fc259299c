import assert from 'node:assert/strict';
import { createManualClock } from '../lib/index.js';
import { createRateLimiter } from './rate-limiter.js';

describe('csr: rate limiter', () => {
  it('allows the burst, then one per refill period, and counts refusals in a row', () => {
    const clock = createManualClock();
    const l = createRateLimiter({ burst: 3, perSecond: 2, maxKeys: 10 }, clock);
    assert.deepEqual(
      [1, 2, 3].map(() => l.take('a').allowed),
      [true, true, true],
    );
    assert.deepEqual(l.take('a'), { allowed: false, refusedInRow: 1 });
    assert.deepEqual(l.take('a'), { allowed: false, refusedInRow: 2 });
    clock.advance(500);
    assert.deepEqual(l.take('a'), { allowed: true });
    assert.deepEqual(l.take('a'), { allowed: false, refusedInRow: 1 });
    assert.equal(l.take('b').allowed, true, 'buckets are per key');
  });

  it('never holds more than maxKeys buckets, and drops idle ones as calls pass', () => {
    const clock = createManualClock();
    const l = createRateLimiter({ burst: 2, perSecond: 1, maxKeys: 50 }, clock);
    for (let i = 0; i < 10_000; i++) {
      l.take(`k${i}`);
      assert.ok(l.size() <= 50);
    }
    clock.advance(10_000); // every bucket is full again: idle
    for (let i = 0; i < 40; i++) l.take('busy');
    assert.ok(l.size() < 10, `idle buckets dropped, ${l.size()} left`);
  });

  it('does not mint tokens when the clock steps back', () => {
    const clock = createManualClock();
    const l = createRateLimiter({ burst: 1, perSecond: 1, maxKeys: 10 }, clock);
    assert.equal(l.take('a').allowed, true);
    clock.advance(-60_000);
    assert.equal(l.take('a').allowed, false);
  });

  it('refuses a nonsensical policy', () => {
    assert.throws(() => createRateLimiter({ burst: 0, perSecond: 1, maxKeys: 1 }, createManualClock()), /invalid rate limit/);
  });
});
