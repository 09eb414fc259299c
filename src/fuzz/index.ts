export { seededRandom, inputRandom } from './random.js';
export type { Random } from './random.js';
export { mutateText, mutateBytes } from './mutate.js';
export { runFuzz, fuzzOptions } from './run.js';
export type { FuzzOptions, FuzzOutcome } from './run.js';
export type { FuzzTarget, Verdict } from './target.js';
