// The fuzz runner: runs a target's inputs in a worker thread and bounds each one. A crash or a
// rejection without a diagnostic is reported with the seed, the input index and the input
// itself; an input that runs past the bound is reported the same way and its worker terminated.
import { Worker } from 'node:worker_threads';

/** How long one fuzz run is and how it is seeded; `make fuzz` takes them from the environment. */
export interface FuzzOptions {
  readonly seed: number;
  readonly iterations: number;
  /** No single input may run longer than this (a hang, or an input that costs super-linear time). */
  readonly perInputMs: number;
}

/** What a fuzz run found. */
export type FuzzOutcome =
  | { readonly ok: true; readonly accepted: number; readonly rejected: number }
  | { readonly ok: false; readonly index: number; readonly reason: string; readonly input?: string };

/** The options of a run: FUZZ_SEED and FUZZ_ITERATIONS override the defaults (what `make test` runs). */
export function fuzzOptions(defaults: FuzzOptions): FuzzOptions {
  const num = (name: string, d: number) => {
    const v = process.env[name];
    if (v === undefined || v === '') return d;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}=${v}: expected a non-negative integer`);
    return n;
  };
  return {
    seed: num('FUZZ_SEED', defaults.seed),
    iterations: num('FUZZ_ITERATIONS', defaults.iterations),
    perInputMs: num('FUZZ_INPUT_MS', defaults.perInputMs),
  };
}

/** Runs the FuzzTarget a module exports (as `target`, or `exportName`) under `opts`; resolves with what it found. */
export function runFuzz(targetModule: URL, opts: FuzzOptions, exportName = 'target'): Promise<FuzzOutcome> {
  const worker = new Worker(new URL('./fuzz-worker.js', import.meta.url), {
    workerData: { targetModule: targetModule.href, exportName, seed: opts.seed, iterations: opts.iterations },
    // The worker's heap is bounded too: an input that makes the parser allocate without bound fails, it does not swap.
    resourceLimits: { maxOldGenerationSizeMb: 1024 },
  });
  return new Promise((resolve) => {
    let current = -1;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (o: FuzzOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      resolve(o);
    };
    // Seeds are made before the first input: they get the same bound, ten times over.
    const arm = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(
        () => finish({ ok: false, index: current, reason: `input ${current} ran longer than ${ms} ms (seed ${opts.seed})` }),
        ms,
      );
    };
    arm(opts.perInputMs * 10);
    worker.on('message', (m: { kind: string; index: number; error?: string; input?: string; accepted?: number; rejected?: number }) => {
      if (m.kind === 'start') {
        current = m.index;
        arm(opts.perInputMs);
      } else if (m.kind === 'failure')
        finish({ ok: false, index: m.index, reason: `seed ${opts.seed}, input ${m.index}: ${m.error}`, input: m.input });
      else if (m.kind === 'done') finish({ ok: true, accepted: m.accepted!, rejected: m.rejected! });
    });
    worker.on('error', (e) =>
      finish({ ok: false, index: current, reason: `seed ${opts.seed}, input ${current}: the worker died: ${e.stack ?? e.message}` }),
    );
    worker.on('exit', (code) =>
      finish({ ok: false, index: current, reason: `seed ${opts.seed}: the worker exited (${code}) at input ${current}` }),
    );
  });
}
