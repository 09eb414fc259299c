/** Exponential backoff between retries: `initialMs`, doubling, capped at `maxMs`. */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** 250 ms, 500 ms, 1 s, ... up to 5 s: quick to recover from a blip, gentle on a CA that is down. */
export const defaultBackoff: BackoffPolicy = { initialMs: 250, maxMs: 5_000 };

/**
 * Returns the delay before retry number `failures` (1 for the first retry), given a random
 * number in [0, 1). The delay is drawn from the upper half of the step ("equal jitter"),
 * so agents that lost the CA together do not come back together, and never wait less than half.
 */
export function backoffDelay(failures: number, policy: BackoffPolicy, random: number): number {
  const step = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(Math.max(0, failures - 1), 30));
  return Math.round(step / 2 + (step / 2) * random);
}
