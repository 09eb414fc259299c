// Runs the compiled tests with mocha: `unit`, `e2e` or `all` in one run, so the
// closing `N passed, N failed` line counts everything.
import { spawnSync } from 'node:child_process';

const which = process.argv[2] ?? 'all';
const globs = {
  unit: ['dist/src/**/*.test.js'],
  e2e: ['dist/e2e/**/*.test.js'],
  all: ['dist/src/**/*.test.js', 'dist/e2e/**/*.test.js'],
}[which];
if (!globs) {
  console.error(`run-tests: unknown suite '${which}' (unit, e2e, all)`);
  process.exit(2);
}
const args = ['mocha', '--reporter', './scripts/mocha-summary-reporter.cjs', '--timeout', '20000', '--exit', ...globs];
const r = spawnSync('npx', args, { stdio: 'inherit' });
process.exit(r.status ?? 1);
