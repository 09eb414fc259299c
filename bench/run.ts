// Runs every bench module in turn, then prints one table and writes bench/out/results.json.
// `make bench` runs this as `node --expose-gc dist/bench/run.js`.
import { report, type BenchResult } from './lib/report.js';
import * as ca from './ca.bench.js';
import * as configLoad from './config-load.bench.js';
import * as xds from './xds.bench.js';

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
];
// ----------------------------------------------------------------------------------

const results: BenchResult[] = [];
for (const b of benches) {
  const t0 = performance.now();
  results.push(...(await b.run()));
  console.error(`bench ${b.name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
report(results);
