// What a fuzz target provides to the runner: how to make input `i` and how to check what the
// code under test did with it. A target module's default-free export `target` is loaded by the
// worker (fuzz-worker.ts), so a hang in the code under test never blocks the runner.
import type { Random } from './random.js';

/** What the checked code did with one input. */
export type Verdict = 'accepted' | 'rejected';

/** A fuzz target: seeds, a mutator over them, and a check that throws on a defect. */
export interface FuzzTarget<I> {
  /** Seed inputs (valid and near-valid), made once per run. */
  seeds(): Promise<readonly I[]>;
  /** Input number `i`: a mutation of a seed chosen with `rng`. */
  generate(seeds: readonly I[], rng: Random): I;
  /** Runs the code under test on `input`; throws (with what is wrong) on a crash or a rejection without a diagnostic. */
  check(input: I): Promise<Verdict> | Verdict;
  /** A printable form of an input, for the failure report. */
  describe(input: I): string;
}
