// Targets with known defects, for the runner's own tests: a fuzzer that cannot fail proves nothing.
import { mutateText, type FuzzTarget } from './index.js';

const base: Omit<FuzzTarget<string>, 'check'> = {
  seeds: async () => ['kind: Service'],
  generate: (seeds, rng) => mutateText(seeds[0]!, rng, ['{', '&a', '*a']),
  describe: (s) => JSON.stringify(s),
};

/** Crashes on the fourth input. */
export const crashesAtThree: FuzzTarget<string> = {
  ...base,
  check: (() => {
    let n = 0;
    return () => {
      if (n++ === 3) throw new TypeError('cannot read properties of undefined');
      return 'rejected';
    };
  })(),
};

/** Hangs (a busy loop, as a catastrophic regex would) on the third input. */
export const hangsAtTwo: FuzzTarget<string> = {
  ...base,
  check: (() => {
    let n = 0;
    return () => {
      if (n++ === 2) for (;;);
      return 'accepted';
    };
  })(),
};

/** Fine on every input. */
export const fine: FuzzTarget<string> = { ...base, check: (s) => (s.includes('{') ? 'rejected' : 'accepted') };
