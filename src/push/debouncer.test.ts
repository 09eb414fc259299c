import assert from 'node:assert/strict';
import { createManualClock } from '../lib/index.js';
import { createDebouncer } from './debouncer.js';

/** Timers driven by hand, on a manual clock. */
function manualTimers(clock: ReturnType<typeof createManualClock>) {
  let pending: { at: number; fn: () => void; id: number }[] = [];
  let next = 0;
  return {
    setTimeout: (fn: () => void, ms: number) => {
      const id = ++next;
      pending.push({ at: clock.now() + ms, fn, id });
      return id;
    },
    clearTimeout: (h: unknown) => {
      pending = pending.filter((p) => p.id !== h);
    },
    advance(ms: number) {
      clock.advance(ms);
      const due = pending.filter((p) => p.at <= clock.now());
      pending = pending.filter((p) => p.at > clock.now());
      for (const p of due) p.fn();
    },
  };
}

describe('debouncer', () => {
  it('merges a burst into one batch after the quiet period', () => {
    const clock = createManualClock();
    const timers = manualTimers(clock);
    const batches: string[][] = [];
    const d = createDebouncer<string>({
      quietMs: 50,
      maxDelayMs: 500,
      timers,
      now: () => clock.now(),
      run: (b) => batches.push([...b].sort()),
    });
    d.request(['a']);
    timers.advance(30);
    d.request(['b', 'a']);
    timers.advance(30);
    assert.deepEqual(batches, []);
    timers.advance(20);
    assert.deepEqual(batches, [['a', 'b']]);
  });

  it('runs by the hard cap even while changes keep coming', () => {
    const clock = createManualClock();
    const timers = manualTimers(clock);
    const batches: number[] = [];
    const d = createDebouncer<number>({ quietMs: 50, maxDelayMs: 200, timers, now: () => clock.now(), run: (b) => batches.push(b.size) });
    for (let i = 0; i < 10; i++) {
      d.request([i]);
      timers.advance(40); // always inside the quiet period
    }
    assert.ok(batches.length >= 1, 'a batch ran within the cap');
    assert.ok(batches[0]! <= 6, `the first batch ran by 200 ms: ${batches[0]} items`);
  });

  it('flushes what is pending now, and cancel drops it', () => {
    const clock = createManualClock();
    const timers = manualTimers(clock);
    const batches: number[] = [];
    const d = createDebouncer<number>({ quietMs: 50, maxDelayMs: 500, timers, now: () => clock.now(), run: (b) => batches.push(b.size) });
    d.request([1, 2]);
    d.flush();
    assert.deepEqual(batches, [2]);
    d.request([3]);
    d.cancel();
    timers.advance(1_000);
    assert.deepEqual(batches, [2]);
  });
});
