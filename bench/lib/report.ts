import { mkdirSync, writeFileSync } from 'node:fs';

/** One benchmark result: a measured value, the baseline measured in the same run, and their ratio. */
export interface BenchResult {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly baseline: { readonly name: string; readonly value: number };
  /** value / baseline.value, so the reader sees how close to the floor we are. */
  readonly ratio: number;
  readonly target?: string;
  readonly note?: string;
  /** The phase hit its time cap: `value` is the cap, a lower bound. */
  readonly timedOut?: boolean;
  /** Why the row has no measurement (value is NaN). */
  readonly skipped?: string;
}

/** Builds a result, computing the ratio from the two numbers measured in one run. */
export function result(r: Omit<BenchResult, 'ratio'>): BenchResult {
  return { ...r, ratio: r.baseline.value === 0 ? Number.NaN : r.value / r.baseline.value };
}

/** Prints results as a table and writes them to bench/out/results.json (replacing it: run.ts reports every bench at once). */
export function report(results: readonly BenchResult[], outFile = 'bench/out/results.json'): void {
  const rows = results.map((r) => [
    r.name,
    r.skipped !== undefined ? 'skipped' : r.timedOut ? `timed out after ${fmt(r.value)}` : fmt(r.value),
    r.unit,
    `${r.baseline.name} = ${fmt(r.baseline.value)}`,
    r.ratio.toFixed(3),
    r.target ?? '',
  ]);
  const head = ['metric', 'value', 'unit', 'baseline', 'ratio', 'target'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
  for (const r of results) if (r.skipped !== undefined) console.log(`${r.name}: skipped: ${r.skipped}`);
  mkdirSync(outFile.replace(/\/[^/]*$/, ''), { recursive: true });
  writeFileSync(outFile, JSON.stringify(results, null, 2) + '\n');
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  return Math.abs(n) >= 100 ? n.toFixed(0) : n.toPrecision(4);
}
