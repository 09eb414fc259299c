import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { packageVersion } from './version.js';

const bin = fileURLToPath(new URL('./bin.js', import.meta.url));
const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as { version: string };

describe('cli: meshpilot', () => {
  it('prints the package.json version with --version and -V', function () {
    this.timeout(30_000); // two CLI starts (each loads every module): seconds on a loaded 2-core machine
    assert.equal(packageVersion(), pkg.version);
    for (const flag of ['--version', '-V']) {
      const out = execFileSync(process.execPath, [bin, flag], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(out.trim(), pkg.version);
    }
  });

  it('runs with its open-file soft limit raised to the hard limit (Node does it at start)', function () {
    if (!existsSync('/proc/self/limits') || !existsSync('/bin/bash')) this.skip();
    // A soft limit of 256 (a common default) under whatever hard limit this machine has.
    const script = `ulimit -Sn 256 2>/dev/null; exec "${process.execPath}" -e 'process.stdout.write(require("fs").readFileSync("/proc/self/limits","utf8"))'`;
    const limits = execFileSync('/bin/bash', ['-c', script], { encoding: 'utf8', timeout: 20_000 });
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limits);
    assert.ok(m, limits);
    assert.equal(m[1], m[2], 'soft limit raised to the hard limit');
  });
});
