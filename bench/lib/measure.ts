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

/** Wall-clock milliseconds, sub-millisecond, comparable across processes (performance.timeOrigin + performance.now()). */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** The q-quantile (0..1) of a non-empty list, nearest rank. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) throw new Error('quantile of nothing');
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/**
 * Measures two functions in alternating slices of sliceMs until each has run about ms in
 * total, so both see the same machine (CPU frequency, other load): the ratio stays honest.
 */
export function interleavedRates(ms: number, a: () => unknown, b: () => unknown, sliceMs = 25): [number, number] {
  const time = [0, 0];
  const count = [0, 0];
  const fs = [a, b];
  while (time[0]! < ms || time[1]! < ms) {
    for (const k of [0, 1]) {
      const f = fs[k]!;
      const start = performance.now();
      const end = start + sliceMs;
      let now = start;
      while (now < end) {
        for (let i = 0; i < 16; i++) f();
        count[k]! += 16;
        now = performance.now();
      }
      time[k]! += now - start;
    }
  }
  return [count[0]! / (time[0]! / 1000), count[1]! / (time[1]! / 1000)];
}
