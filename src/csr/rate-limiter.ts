import type { Clock } from '../lib/index.js';

/** A token bucket per key: `burst` requests at once, refilled at `perSecond`. */
export interface RateLimitPolicy {
  readonly burst: number;
  readonly perSecond: number;
  /** Most keys remembered; beyond it the least recently used bucket is dropped. */
  readonly maxKeys: number;
}

/** Istio agents ask once per renewal; ten at once and one a second leaves room for restarts and retries. */
export const defaultRateLimit: RateLimitPolicy = { burst: 10, perSecond: 1, maxKeys: 10_000 };

/** Per-key token buckets with bounded memory. */
export interface RateLimiter {
  /** Takes one token for the key; when its bucket is empty, says how many calls in a row were refused (this one included). */
  take(key: string): { readonly allowed: true } | { readonly allowed: false; readonly refusedInRow: number };
  /** How many buckets are held now. */
  size(): number;
}

interface Bucket {
  tokens: number;
  at: number;
  refusedInRow: number;
}

/** Creates a limiter. Idle buckets (refilled to full, so they hold no information) are dropped as calls pass. */
export function createRateLimiter(policy: RateLimitPolicy, clock: Clock): RateLimiter {
  if (!(policy.burst >= 1 && policy.perSecond > 0 && policy.maxKeys >= 1)) throw new Error(`invalid rate limit ${JSON.stringify(policy)}`);
  // Map iteration order is insertion order; a used bucket is re-inserted, so the first
  // entries are the least recently used: the idle ones, and the ones to evict first.
  const buckets = new Map<string, Bucket>();
  const level = (b: Bucket, now: number) => Math.min(policy.burst, b.tokens + (Math.max(0, now - b.at) / 1000) * policy.perSecond);

  function pruneIdle(now: number): void {
    // A couple per call keeps the work O(1) and still drains idle buckets faster than calls add them.
    for (let n = 0; n < 2; n++) {
      const first = buckets.entries().next();
      if (first.done || level(first.value[1], now) < policy.burst) return;
      buckets.delete(first.value[0]);
    }
  }

  return {
    take(key) {
      const now = clock.now();
      pruneIdle(now);
      let b = buckets.get(key);
      if (b) buckets.delete(key);
      else {
        if (buckets.size >= policy.maxKeys) buckets.delete(buckets.keys().next().value!);
        b = { tokens: policy.burst, at: now, refusedInRow: 0 };
      }
      b.tokens = level(b, now);
      b.at = Math.max(b.at, now); // a clock stepping back must not mint tokens later
      buckets.set(key, b);
      if (b.tokens < 1) return { allowed: false, refusedInRow: ++b.refusedInRow };
      b.tokens -= 1;
      b.refusedInRow = 0;
      return { allowed: true };
    },
    size: () => buckets.size,
  };
}
