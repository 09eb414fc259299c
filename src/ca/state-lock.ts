// One server per state directory: two servers signing from the same CA state would each
// overwrite the other's ca.json and issuance journal. The lock is a file holding the owner's pid,
// created atomically (written under a temporary name, then hard-linked into place, which fails
// if the lock exists), so a reader never sees a half-written pid.
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, realpathSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { err, ok, type Result } from '../lib/index.js';

/** The lock file in the state directory. */
export const STATE_LOCK_FILE = 'meshpilot.lock';

/** A held state directory lock. */
export interface StateLock {
  /** The lock file's path. */
  readonly file: string;
  /** Removes the lock file if it is still this process's; safe to call more than once. */
  release(): void;
}

/** How the lock looks at processes; tests replace it. */
export interface StateLockOptions {
  /** This process's pid; default process.pid. */
  readonly pid?: number;
  /** Whether a pid is a running process; default a signal-0 probe. */
  readonly isAlive?: (pid: number) => boolean;
}

// Directories this process holds: a lock naming our own pid that we do not hold was left by an
// earlier process that had the same pid (a container restarted, where the server is always pid 1).
const held = new Set<string>();

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readPid(file: string): number | undefined {
  try {
    const text = readFileSync(file, 'utf8').trim();
    return /^[1-9][0-9]{0,9}$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

function writeTemp(file: string, content: string): void {
  const fd = openSync(file, 'wx', 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Takes the state directory's lock (making the directory if needed), or says which live process
 * holds it. A lock left by a process that is gone (a crash, kill -9) is taken over.
 */
export function acquireStateLock(dir: string, opts: StateLockOptions = {}): Result<StateLock> {
  const pid = opts.pid ?? process.pid;
  const isAlive = opts.isAlive ?? processIsAlive;
  let file = join(dir, STATE_LOCK_FILE);
  let temp: string;
  try {
    // The lock is taken before the CA makes its state on first start: make the directory as the CA would (0700).
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // The real path names the lock in `held`, so the same directory reached by another path is the same lock.
    const real = realpathSync(dir);
    file = join(real, STATE_LOCK_FILE);
    temp = join(real, `${STATE_LOCK_FILE}.${pid}.tmp`);
    rmSync(temp, { force: true });
    writeTemp(temp, `${pid}\n`);
  } catch (e) {
    return err(`${file}: cannot create lock: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    // Two rounds at most: the first may find a stale lock and clear it, the second takes the lock.
    for (let round = 0; round < 2; round++) {
      try {
        linkSync(temp, file);
        held.add(file);
        return ok({
          file,
          release() {
            if (!held.has(file)) return;
            held.delete(file);
            if (readPid(file) === pid) rmSync(file, { force: true });
          },
        });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
          return err(`${file}: cannot create lock: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      const owner = readPid(file);
      if (owner === undefined) return err(`${file}: lock file holds no pid; if no meshpilot server uses ${dir}, remove it`);
      if (held.has(file)) return err(`${file}: this process (pid ${owner}) already holds the state directory`);
      if (owner !== pid && isAlive(owner)) return err(`${file}: state directory is in use by pid ${owner}; stop that server first`);
      if (!clearStale(file, owner, dir, pid))
        return err(`${file}: another process took over the stale lock of pid ${owner} at the same time; try again`);
    }
    return err(`${file}: lock could not be taken; try again`);
  } finally {
    rmSync(temp, { force: true });
  }
}

// Moves a stale lock aside and checks that what was moved is the stale lock that was read: if a
// racing server replaced it in between, its fresh lock is put back and this attempt gives up.
function clearStale(file: string, stalePid: number, dir: string, pid: number): boolean {
  const aside = join(dir, `${STATE_LOCK_FILE}.stale.${pid}`);
  try {
    renameSync(file, aside);
  } catch {
    return false; // someone else moved it first
  }
  const moved = readPid(aside);
  if (moved !== stalePid) {
    try {
      linkSync(aside, file);
    } catch {
      // The lock exists again: whoever made it holds it.
    }
    rmSync(aside, { force: true });
    return false;
  }
  rmSync(aside, { force: true });
  return true;
}
