// Runs every bench module in turn, then prints one table and writes bench/out/results.json.
// `make bench` runs this as `node --expose-gc dist/bench/run.js`. BENCH_ONLY=real,ca runs
// only those modules; BENCH_OUT writes the results elsewhere (make bench-10k does both).
import { report, type BenchResult } from './lib/report.js';
import * as ca from './ca.bench.js';
import * as configLoad from './config-load.bench.js';
import * as real from './real.bench.js';
import * as captureBytes from './capture-bytes.bench.js';
import * as xds from './xds.bench.js';
import * as replicas from './replicas.bench.js';

interface BenchModule {
  readonly name: string;
  run(): Promise<BenchResult[]>;
}

// ---- BENCH MODULES --------------------------------------------------------------
// Every bench module, imported statically above and listed here, run in this order.
// To add one: `import * as foo from './foo.bench.js';` above, then `{ name: 'foo', run: foo.run }` below.
const benches: readonly BenchModule[] = [
  { name: 'xds', run: xds.run },
  { name: 'ca', run: ca.run },
  { name: 'config-load', run: configLoad.run },
  { name: 'real', run: real.run },
  { name: 'capture-bytes', run: captureBytes.run },
  { name: 'replicas', run: replicas.run },
];
// ----------------------------------------------------------------------------------

const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
const results: BenchResult[] = [];
for (const b of benches.filter((b) => !only || only.includes(b.name))) {
  const t0 = performance.now();
  results.push(...(await b.run()));
  console.error(`bench ${b.name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
report(results, process.env.BENCH_OUT);
