import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireStateLock, STATE_LOCK_FILE } from './index.js';

const lockModule = fileURLToPath(new URL('./state-lock.js', import.meta.url));

// A second server: a child process that takes the lock, says so, and holds it until killed.
function holdLockInChild(dir: string): Promise<ChildProcess> {
  const script = `import { acquireStateLock } from ${JSON.stringify(lockModule)};
const r = acquireStateLock(${JSON.stringify(dir)});
process.stdout.write(r.ok ? 'held\\n' : 'refused ' + r.error + '\\n');
setTimeout(() => {}, 60000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => (String(d).startsWith('held') ? resolve(child) : reject(new Error(String(d)))));
    child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
}

describe('ca: state directory lock', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-lock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('takes the lock with this pid, refuses a second holder in the same process, and releases', () => {
    const a = acquireStateLock(dir);
    assert.ok(a.ok, a.ok ? '' : a.error);
    assert.equal(readFileSync(join(dir, STATE_LOCK_FILE), 'utf8'), `${process.pid}\n`);
    const b = acquireStateLock(dir);
    assert.ok(!b.ok && /already holds/.test(b.error));
    symlinkSync(dir, join(dir, 'alias'));
    const viaLink = acquireStateLock(join(dir, 'alias', '.'));
    assert.ok(!viaLink.ok && /already holds/.test(viaLink.error), 'the same directory by another path');
    rmSync(join(dir, 'alias'));
    a.value.release();
    a.value.release();
    assert.equal(existsSync(join(dir, STATE_LOCK_FILE)), false);
    const c = acquireStateLock(dir);
    assert.ok(c.ok);
    c.value.release();
    assert.deepEqual(readdirSync(dir), [], 'no temporary files left');
  });

  it('refuses while another live server holds the directory, naming its pid, and takes over once it is gone', async () => {
    const child = await holdLockInChild(dir);
    try {
      const r = acquireStateLock(dir);
      assert.equal(r.ok, false);
      assert.match(!r.ok ? r.error : '', new RegExp(`in use by pid ${child.pid}\\b`));
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    // The killed server left its lock file behind: it is stale, and taken over.
    assert.equal(readFileSync(join(dir, STATE_LOCK_FILE), 'utf8'), `${child.pid}\n`);
    const again = acquireStateLock(dir);
    assert.ok(again.ok, again.ok ? '' : again.error);
    again.value.release();
  });

  it('takes over a lock naming its own pid that it does not hold (a restarted container, always pid 1)', () => {
    writeFileSync(join(dir, STATE_LOCK_FILE), '1\n');
    const r = acquireStateLock(dir, { pid: 1, isAlive: () => true });
    assert.ok(r.ok, r.ok ? '' : r.error);
    r.value.release();
  });

  it('makes a missing state directory, 0700, as the CA would', () => {
    const state = join(dir, 'state');
    const r = acquireStateLock(state);
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.equal(statSync(state).mode & 0o777, 0o700);
    r.value.release();
  });

  it('refuses a lock file without a pid rather than guess', () => {
    writeFileSync(join(dir, STATE_LOCK_FILE), 'garbage');
    const r = acquireStateLock(dir);
    assert.ok(!r.ok && /holds no pid/.test(r.error));
  });

  it('does not remove a lock another process took over before release', () => {
    const a = acquireStateLock(dir, { pid: 4242, isAlive: () => false });
    assert.ok(a.ok);
    // Someone judged pid 4242 dead and took the lock; 4242 must not delete theirs.
    writeFileSync(join(dir, STATE_LOCK_FILE), '4343\n');
    a.value.release();
    assert.equal(readFileSync(join(dir, STATE_LOCK_FILE), 'utf8'), '4343\n');
  });
});
