// meshpilot as users run it: `meshpilot serve`, `token`, `bootstrap` and `agent` as child
// processes of the real CLI, so the tests cover the binary, its flags and its state
// directory, and a control plane can be killed hard and started again.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, freePort } from '../harness/index.js';

const BIN = fileURLToPath(new URL('../../src/cli/bin.js', import.meta.url));

/** A child process with its output kept in memory (bounded), for assertions and failure dumps. */
export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  /** Parsed JSON log lines (pino) and raw lines. */
  lines(): readonly string[];
  logs(n?: number): string;
  /** Resolves when some log line satisfies the predicate. */
  waitForLog(pred: (line: string) => boolean, description: string, timeoutMs?: number): Promise<string>;
  /** Sends a signal and waits for the exit (SIGKILL after the grace). */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const MAX_LINES = 5_000;
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

/** Starts `meshpilot <args>` (under `launcher`, e.g. `prlimit --nofile=1200:1200`, when given) and keeps its output. */
export function startMeshpilotProcess(name: string, args: readonly string[], launcher: readonly string[] = []): Child {
  const argv = [...launcher, process.execPath, BIN, ...args];
  const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  const kept: string[] = [];
  let partial = '';
  const onData = (b: Buffer) => {
    const text = partial + b.toString('utf8');
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) {
      kept.push(l);
      if (kept.length > MAX_LINES) kept.shift();
    }
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => {
      running.delete(proc);
      resolve({ code, signal });
    }),
  );
  return {
    name,
    proc,
    exited,
    lines: () => kept,
    logs: (n = 80) => kept.slice(-n).join('\n'),
    async waitForLog(pred, description, timeoutMs = 15_000) {
      return eventually(() => kept.find(pred) ?? false, { timeoutMs, description: `${name}: ${description}` });
    },
    async stop(signal = 'SIGTERM', graceMs = 5_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

/** Runs a short meshpilot command to completion and returns its stdout; throws with stderr on failure. */
export function runMeshpilot(args: readonly string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`meshpilot ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** Like runMeshpilot, without blocking the event loop (so load generated in this process keeps flowing). */
export function runMeshpilotAsync(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`meshpilot ${args.join(' ')} exited ${code}: ${err}`));
    });
  });
}

/** A control plane process over a state directory, restartable on the same ports. */
export interface ControlPlaneProcess {
  readonly xdsPort: number;
  readonly adminPort: number;
  readonly stateDir: string;
  current(): Child;
  /** Starts (again) and waits until the admin port answers. */
  start(): Promise<Child>;
  /** The mesh roots, PEM, as they are in the state directory. */
  rootPem(): string;
  /** Every log line of every run so far. */
  allLines(): readonly string[];
}

/** Prepares a control plane on free loopback ports; call start(). */
export async function controlPlaneProcess(o: {
  configDir: string;
  stateDir: string;
  extraArgs?: readonly string[];
  /** A command the serve process runs under (e.g. prlimit with a lower file-descriptor limit). */
  launcher?: readonly string[];
}): Promise<ControlPlaneProcess> {
  const xdsPort = await freePort();
  const adminPort = await freePort();
  let child: Child | undefined;
  const history: string[][] = [];
  return {
    xdsPort,
    adminPort,
    stateDir: o.stateDir,
    current: () => child!,
    async start() {
      child = startMeshpilotProcess(
        'meshpilot',
        [
          'serve',
          '--config',
          o.configDir,
          '--state-dir',
          o.stateDir,
          // The kit's state directories start empty: the first start makes the CA, restarts reuse it.
          '--init',
          '--xds-address',
          `127.0.0.1:${xdsPort}`,
          '--admin-port',
          String(adminPort),
          ...(o.extraArgs ?? []),
        ],
        o.launcher,
      );
      history.push(child.lines() as string[]);
      const c = child;
      await eventually(
        async () => {
          if (c.proc.exitCode !== null) throw new Error(`meshpilot exited ${c.proc.exitCode}:\n${c.logs()}`);
          const r = await fetch(`http://127.0.0.1:${adminPort}/healthz`);
          return r.ok;
        },
        { timeoutMs: 20_000, description: 'meshpilot admin /healthz' },
      );
      return c;
    },
    rootPem() {
      return readdirSync(o.stateDir)
        .filter((f) => /^root-\d+-cert\.pem$/.test(f))
        .sort()
        .map((f) => readFileSync(join(o.stateDir, f), 'utf8'))
        .join('');
    },
    allLines: () => history.flat(),
  };
}

/** Parses pino JSON lines that carry `msg`. */
export function logEntries(lines: readonly string[]): { msg: string; [k: string]: unknown }[] {
  return lines.flatMap((l) => {
    if (!l.startsWith('{')) return [];
    try {
      return [JSON.parse(l) as { msg: string }];
    } catch {
      return [];
    }
  });
}

/** Whether a Unix socket (or any file) exists at the path. */
export const exists = (p: string): boolean => existsSync(p);
