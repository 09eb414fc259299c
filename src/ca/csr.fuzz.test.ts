import assert from 'node:assert/strict';
import { fuzzOptions, runFuzz } from '../fuzz/index.js';

// `make test` runs a short, fixed run (the same seed and count every time); `make fuzz` runs
// the same target longer (FUZZ_ITERATIONS, FUZZ_SEED).
describe('CSR parser under fuzzing', function () {
  const opts = fuzzOptions({ seed: 2986, iterations: 400, perInputMs: 10_000 });
  this.timeout(Math.max(120_000, opts.iterations * 50));

  it(`never throws or hangs, and refuses only with a bad-csr message (seed ${opts.seed}, ${opts.iterations} inputs)`, async () => {
    const outcome = await runFuzz(new URL('./csr-fuzz-target.js', import.meta.url), opts);
    assert.ok(outcome.ok, outcome.ok ? '' : `${outcome.reason}\ninput: ${outcome.input ?? '(see the reason)'}`);
    assert.equal(outcome.accepted + outcome.rejected, opts.iterations);
    // Properly signed CSRs get through: the readers behind the signature check are reached.
    if (opts.iterations >= 300) assert.ok(outcome.accepted > 0 && outcome.rejected > 0, JSON.stringify(outcome));
    console.log(`      csr fuzz: ${outcome.accepted} parsed, ${outcome.rejected} refused with a bad-csr message`);
  });
});
