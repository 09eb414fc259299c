import assert from 'node:assert/strict';
import { renewalTime } from './renewal.js';

describe('renewalTime', () => {
  const validity = { notBefore: 0, notAfter: 3_600_000 };

  it('renews at half the lifetime without jitter', () => {
    assert.equal(renewalTime(validity, { atFraction: 0.5, jitterFraction: 0 }, 0.7), 1_800_000);
  });

  it('spreads the renewals of certificates issued together across the jitter window', () => {
    const policy = { atFraction: 0.5, jitterFraction: 0.1 };
    // A deterministic sample of 1,000 "random" draws, evenly spread over [0, 1).
    const times = Array.from({ length: 1_000 }, (_, i) => renewalTime(validity, policy, (i * 0.618034) % 1));
    const min = Math.min(...times);
    const max = Math.max(...times);
    assert.ok(min >= 0.4 * 3_600_000 - 1 && max <= 0.5 * 3_600_000, `within [40%, 50%] of the lifetime: ${min}..${max}`);
    // The spread covers most of the window: no herd at one instant.
    assert.ok(max - min > 0.09 * 3_600_000);
    const buckets = new Array(10).fill(0) as number[];
    for (const t of times) buckets[Math.min(9, Math.floor(((t - 0.4 * 3_600_000) / (0.1 * 3_600_000)) * 10))]!++;
    assert.ok(
      buckets.every((b) => b >= 50 && b <= 150),
      `roughly even over ten buckets: ${buckets.join(',')}`,
    );
  });

  it('never renews before 5% of the lifetime, whatever the settings', () => {
    assert.equal(renewalTime(validity, { atFraction: 0.1, jitterFraction: 0.5 }, 0.99), 0.05 * 3_600_000);
  });
});
