// Runs a fuzz target in a worker thread: before each input it tells the runner which one it
// starts, so the runner can bound the time per input and stop a worker that hangs.
import { parentPort, workerData } from 'node:worker_threads';
import { inputRandom } from './random.js';
import type { FuzzTarget } from './target.js';

interface Job {
  readonly targetModule: string;
  readonly exportName: string;
  readonly seed: number;
  readonly iterations: number;
}

const job = workerData as Job;
const target = ((await import(job.targetModule)) as Record<string, FuzzTarget<unknown>>)[job.exportName]!;
const seeds = await target.seeds();
let accepted = 0;
let rejected = 0;
for (let i = 0; i < job.iterations; i++) {
  const input = target.generate(seeds, inputRandom(job.seed, i));
  parentPort!.postMessage({ kind: 'start', index: i });
  try {
    if ((await target.check(input)) === 'accepted') accepted++;
    else rejected++;
  } catch (e) {
    parentPort!.postMessage({ kind: 'failure', index: i, error: (e as Error).stack ?? String(e), input: target.describe(input) });
    process.exit(0);
  }
}
parentPort!.postMessage({ kind: 'done', accepted, rejected });
