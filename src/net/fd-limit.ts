// The process's file-descriptor limit. Node raises its own soft RLIMIT_NOFILE to the hard limit
// at start-up (PlatformInit in node.cc); Node has no setrlimit of its own to do more, and none
// is needed. This reads what the process has (Linux: /proc/self/limits), so that it is logged
// and the default connection caps stay below it; if the soft limit is still below the hard
// one, util-linux's prlimit(1) raises it (prlimit(2) on our own pid).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Soft and hard limits on open files; `unlimited` is Infinity. */
export interface FdLimit {
  readonly soft: number;
  readonly hard: number;
}

/** Parses the "Max open files" line of a /proc/<pid>/limits text. */
export function parseFdLimit(limitsText: string): FdLimit | undefined {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limitsText);
  if (!m) return undefined;
  const n = (s: string) => (s === 'unlimited' ? Infinity : Number(s));
  const soft = n(m[1]!);
  const hard = n(m[2]!);
  return Number.isNaN(soft) || Number.isNaN(hard) ? undefined : { soft, hard };
}

/** The process's limit now, or undefined where /proc is not there (not Linux). */
export function readFdLimit(read: (p: string) => string = (p) => readFileSync(p, 'utf8')): FdLimit | undefined {
  try {
    return parseFdLimit(read('/proc/self/limits'));
  } catch {
    return undefined;
  }
}

/** What raising found and did, for the start-up log line. */
export interface FdLimitReport {
  readonly before?: FdLimit;
  readonly after?: FdLimit;
  /** How the soft limit was raised, or why it was not. */
  readonly note: string;
}

/** Raises the soft limit to the hard one if Node left it lower, and reports the limit the process has. */
export function raiseFdLimit(
  deps: { read?: (p: string) => string; prlimit?: (pid: number, soft: number, hard: number) => string | undefined } = {},
): FdLimitReport {
  const before = readFdLimit(deps.read);
  if (!before) return { note: 'limit unknown: no /proc/self/limits' };
  if (before.soft >= before.hard) return { before, after: before, note: 'soft limit already at the hard limit' };
  const run = deps.prlimit ?? runPrlimit;
  const failure = run(process.pid, before.hard, before.hard);
  const after = readFdLimit(deps.read) ?? before;
  return { before, after, note: failure ? `not raised: ${failure}` : 'raised with prlimit(1)' };
}

function runPrlimit(pid: number, soft: number, hard: number): string | undefined {
  const v = (n: number) => (n === Infinity ? 'unlimited' : String(n));
  const r = spawnSync('prlimit', ['--pid', String(pid), `--nofile=${v(soft)}:${v(hard)}`], { encoding: 'utf8', timeout: 5_000 });
  if (r.error) return `prlimit: ${r.error.message}`;
  return r.status === 0 ? undefined : `prlimit exited ${r.status}: ${r.stderr.trim()}`;
}

/** The default cap of the xDS listener: what the limit leaves after a reserve for files, the admin port and outbound fetches. */
export function defaultMaxConnections(limit: FdLimit | undefined, reserve = 512): number {
  const soft = limit?.soft ?? 1024;
  return Math.max(64, Math.min(Number.isFinite(soft) ? soft - reserve : 1_000_000, 1_000_000));
}
