// Small measuring helpers shared by benches: medians, bounded waits, settled memory.
import { setTimeout as sleep } from 'node:timers/promises';

/** The median of a non-empty list. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of nothing');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Milliseconds since an arbitrary origin, sub-millisecond. */
export function nowMs(): number {
  return performance.now();
}

/** This process's CPU time (user + system, every thread) in milliseconds. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Polls `cond` every few milliseconds; throws after `timeoutMs`. For set-up only, never inside a timed span. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** A full collection, then a turn of the event loop; a no-op without --expose-gc. */
export async function collect(): Promise<void> {
  globalThis.gc?.();
  await sleep(5);
}

/** Heap and RSS after full collections, in bytes. */
export interface Memory {
  readonly heapUsed: number;
  readonly external: number;
  readonly rss: number;
}

/** Collects garbage until the heap stops shrinking, then reads memory (needs node --expose-gc). */
export async function settledMemory(): Promise<Memory> {
  const gc = globalThis.gc;
  if (!gc) throw new Error('memory benches need node --expose-gc');
  let last = Infinity;
  for (let i = 0; i < 6; i++) {
    gc();
    // Let weak callbacks and finalizers (and grpc-js's deferred cleanups) run.
    await sleep(20);
    const used = process.memoryUsage().heapUsed;
    if (used >= last * 0.999) break;
    last = used;
  }
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, external: m.external, rss: m.rss };
}
