import assert from 'node:assert/strict';
import { fuzzOptions, runFuzz } from '../fuzz/index.js';

// `make test` runs a short, fixed run (deterministic: the same seed and count every time);
// `make fuzz` runs the same target longer (FUZZ_ITERATIONS, FUZZ_SEED).
describe('config loader under fuzzing', function () {
  const opts = fuzzOptions({ seed: 1717, iterations: 600, perInputMs: 10_000 });
  this.timeout(Math.max(120_000, opts.iterations * 50));

  it(`never crashes or hangs, and refuses only with an error diagnostic naming the file (seed ${opts.seed}, ${opts.iterations} inputs)`, async () => {
    const outcome = await runFuzz(new URL('./fuzz-target.js', import.meta.url), opts);
    assert.ok(outcome.ok, outcome.ok ? '' : `${outcome.reason}\ninput: ${outcome.input ?? '(see the reason)'}`);
    assert.equal(outcome.accepted + outcome.rejected, opts.iterations);
    // The mutator keeps some inputs valid: a run that accepted nothing would test only the front door.
    if (opts.iterations >= 500) assert.ok(outcome.accepted > 0 && outcome.rejected > 0, JSON.stringify(outcome));
    console.log(`      config fuzz: ${outcome.accepted} accepted, ${outcome.rejected} refused with a diagnostic`);
  });
});
