import type { Timers } from '../secrets/index.js';

/**
 * Coalesces bursts: work is run after a quiet period, but never later than a hard cap
 * after the first request, so a steady trickle of changes cannot starve pushes.
 */
export function createDebouncer<T>(opts: {
  quietMs: number;
  maxDelayMs: number;
  timers: Timers;
  now: () => number;
  run: (batch: Set<T>) => void;
}) {
  let pending = new Set<T>();
  let firstAt = 0;
  let timer: unknown;
  const fire = () => {
    timer = undefined;
    const batch = pending;
    pending = new Set();
    opts.run(batch);
  };
  return {
    /** Adds items to the next batch and (re)arms the timer. */
    request(items: Iterable<T>): void {
      if (pending.size === 0 && timer === undefined) firstAt = opts.now();
      for (const i of items) pending.add(i);
      if (timer !== undefined) opts.timers.clearTimeout(timer);
      const wait = Math.max(0, Math.min(opts.quietMs, firstAt + opts.maxDelayMs - opts.now()));
      timer = opts.timers.setTimeout(fire, wait);
    },
    /** Runs whatever is pending now. */
    flush(): void {
      if (timer !== undefined) opts.timers.clearTimeout(timer);
      if (pending.size > 0) fire();
      else timer = undefined;
    },
    cancel(): void {
      if (timer !== undefined) opts.timers.clearTimeout(timer);
      timer = undefined;
      pending = new Set();
    },
  };
}
