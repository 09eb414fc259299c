import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpRequest } from './http-client.js';
import { LineRing } from './line-ring.js';

/** The Envoy version the Makefile pins (`make envoy`). */
export const ENVOY_VERSION = '1.36.4';

const LOG_LINES_KEPT = 2000;
const DEFAULT_START_TIMEOUT_MS = 15_000;
const DEFAULT_STOP_GRACE_MS = 5000;
const POLL_INTERVAL_MS = 50;

/** Options for {@link startEnvoy}. */
export interface StartEnvoyOptions {
  /** The Envoy v3 bootstrap as a JSON-able object; an `admin` block on 127.0.0.1:0 is added when absent. */
  bootstrap: object;
  /** Names this Envoy in logs, temp dirs and failure dumps. */
  name: string;
  /** `--log-level`; default `info`. */
  logLevel?: string;
  /** `--component-log-level`, e.g. `upstream:debug,config:trace`. */
  componentLogLevel?: string;
  /** Appended to Envoy's command line. */
  extraArgs?: readonly string[];
  /** Wait for `/ready` to answer 200 LIVE; default true. Pass false for an Envoy that waits on xDS. */
  waitReady?: boolean;
  /** Bound on waiting for the admin endpoint (and readiness); default 15 s. */
  startTimeoutMs?: number;
}

/** How an Envoy process ended. */
export interface EnvoyExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running (or stopped) real Envoy started by {@link startEnvoy}. */
export interface EnvoyProcess {
  readonly name: string;
  readonly pid: number;
  readonly adminHost: string;
  readonly adminPort: number;
  /** The temp dir holding the bootstrap, the admin address file and envoy.log. */
  readonly dir: string;
  /** Resolves when the process has exited and its output is drained. */
  readonly exited: Promise<EnvoyExit>;
  /** True until the process has exited. */
  readonly running: boolean;
  /** Returns the last `lines` lines (default all kept, up to 2,000) of Envoy's stdout and stderr. */
  logs(lines?: number): string;
  /** Sends an admin request, e.g. `admin('/logging?level=debug', 'POST')`. */
  admin(pathAndQuery: string, method?: string): Promise<{ status: number; body: string }>;
  /** Resolves when the admin endpoint answers; throws with the log if Envoy exits first or the timeout passes. */
  waitForAdmin(timeoutMs?: number): Promise<void>;
  /** Returns the body of `/ready`: `LIVE`, `PRE_INITIALIZING`, `INITIALIZING`, `DRAINING`. */
  serverState(): Promise<string>;
  /** Resolves when `/ready` answers 200 LIVE; throws with the log if Envoy exits first or the timeout passes. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** Returns `/config_dump` parsed; `params` is a query string such as `include_eds` or `resource=dynamic_listeners`. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Envoy's own JSON, read ad hoc by tests
  configDump(params?: string): Promise<any>;
  /** Returns counters and gauges (histograms left out); `filter` is Envoy's regex filter on stat names. */
  stats(filter?: string): Promise<Map<string, number>>;
  /** Returns one counter or gauge by exact name, or undefined if Envoy has not created it. */
  stat(name: string): Promise<number | undefined>;
  /** Polls a stat until `predicate` holds and returns its value; throws with the last value on timeout. */
  waitForStat(name: string, predicate: (value: number | undefined) => boolean, timeoutMs?: number): Promise<number | undefined>;
  /** Returns the port a listener is bound to (so `port_value: 0` works); throws if no such listener. */
  listenerPort(listenerName: string): Promise<number>;
  /** Returns `/clusters` as text. */
  clusters(): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5 s); idempotent; removes the temp dir unless KEEP_E2E_ARTIFACTS is set. */
  stop(graceMs?: number): Promise<EnvoyExit>;
}

/** Returns the Envoy binary to run: ENVOY_BIN, else `<repo>/.venv/envoy-<version>`; throws telling to run `make envoy`. */
export function resolveEnvoyBin(): string {
  const fromEnv = process.env.ENVOY_BIN;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (fs.existsSync(fromEnv)) return fromEnv;
    throw new Error(`ENVOY_BIN=${fromEnv} does not exist: run 'make envoy' to install Envoy ${ENVOY_VERSION}`);
  }
  const roots = [repoRootFromHere(), process.cwd()].filter((r): r is string => r !== undefined);
  const candidates = [...new Set(roots)].map((root) => path.join(root, '.venv', `envoy-${ENVOY_VERSION}`));
  const found = candidates.find((c) => fs.existsSync(c));
  if (found !== undefined) return found;
  throw new Error(`Envoy ${ENVOY_VERSION} not found (ENVOY_BIN unset; looked at ${candidates.join(', ')}): run 'make envoy'`);
}

function repoRootFromHere(): string | undefined {
  // This file runs from dist/e2e/harness/ (compiled) or e2e/harness/ (ts runners): walk up to package.json.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}

/** Runs `envoy --mode validate` on a bootstrap and returns whether Envoy accepted it, with its output. */
export async function validateEnvoyConfig(bootstrap: object): Promise<{ ok: boolean; output: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-envoy-validate-'));
  try {
    const configPath = path.join(dir, 'bootstrap.json');
    fs.writeFileSync(configPath, JSON.stringify(withAdmin(bootstrap), null, 2));
    const child = spawn(resolveEnvoyBin(), ['--mode', 'validate', '-c', configPath, '--disable-hot-restart', '-l', 'warning'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    clearTimeout(timer);
    return { ok: code === 0, output };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function withAdmin(bootstrap: object): object {
  if ('admin' in bootstrap && bootstrap.admin !== undefined) return bootstrap;
  return { ...bootstrap, admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } } };
}

// Every Envoy still alive, for the process-exit safety net.
const live = new Map<ChildProcess, { dir: string; keep: boolean }>();
let safetyNetInstalled = false;
let baseIdCounter = 0;

function installSafetyNet(): void {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL is the only thing that is sure to land.
  process.on('exit', killAllNow);
  for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAllNow();
      // Keep the default (die by this signal) unless somebody else handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

function killAllNow(): void {
  for (const [child, { dir, keep }] of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
    if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  live.clear();
}

function keepArtifacts(): boolean {
  const v = process.env.KEEP_E2E_ARTIFACTS;
  return v !== undefined && v !== '' && v !== '0' && v !== 'false';
}

/** Spawns a real Envoy on `bootstrap`, waits for its admin endpoint (and, by default, for LIVE), and returns a handle. */
export async function startEnvoy(options: StartEnvoyOptions): Promise<EnvoyProcess> {
  const bin = resolveEnvoyBin();
  const safeName = options.name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `meshpilot-envoy-${safeName}-`));
  const configPath = path.join(dir, 'bootstrap.json');
  const adminPath = path.join(dir, 'admin-address');
  const logPath = path.join(dir, 'envoy.log');
  fs.writeFileSync(configPath, JSON.stringify(withAdmin(options.bootstrap), null, 2));

  // With --disable-hot-restart Envoy opens no shared memory or hot-restart domain socket, so base ids cannot
  // clash; a unique one still guards any caller that re-enables hot restart through extraArgs.
  // pid * 64 keeps base_id * 10 (Envoy's socket naming) inside uint32 for any Linux pid.
  const baseId = (process.pid % 4_194_304) * 64 + (baseIdCounter++ % 64);
  const args = [
    '--disable-hot-restart',
    '--concurrency',
    '1',
    '-c',
    configPath,
    '--admin-address-path',
    adminPath,
    '--base-id',
    String(baseId),
    '--log-level',
    options.logLevel ?? 'info',
    ...(options.componentLogLevel !== undefined ? ['--component-log-level', options.componentLogLevel] : []),
    ...(options.extraArgs ?? []),
  ];

  installSafetyNet();
  const keep = keepArtifacts();
  const ring = new LineRing(LOG_LINES_KEPT);
  const logFile = fs.createWriteStream(logPath);
  ring.write('harness', `[harness] ${bin} ${args.join(' ')}\n`);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  live.set(child, { dir, keep });

  for (const [streamName, stream] of [
    ['stdout', child.stdout],
    ['stderr', child.stderr],
  ] as const) {
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      ring.write(streamName, chunk);
      logFile.write(chunk);
    });
  }

  let exitInfo: EnvoyExit | undefined;
  const exited = new Promise<EnvoyExit>((resolve) => {
    let spawnError: Error | undefined;
    child.once('error', (error) => {
      spawnError = error;
      ring.write('harness', `[harness] spawn error: ${error.message}\n`);
    });
    child.once('close', (code, signal) => {
      live.delete(child);
      ring.flush();
      exitInfo = { code: spawnError !== undefined ? -1 : code, signal };
      logFile.end(() => resolve(exitInfo as EnvoyExit));
    });
  });

  const describe = () => `envoy ${options.name} (pid ${child.pid ?? '?'}, dir ${dir})`;
  const logTail = (n = 60) => ring.tail(n).join('\n');
  const exitedError = () =>
    new Error(`${describe()} exited early (code ${exitInfo?.code}, signal ${exitInfo?.signal}); last log lines:\n${logTail()}`);

  // Polls `check` until it returns a value; bounded by timeoutMs and by the process exiting.
  async function pollUntil<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no attempt';
    while (Date.now() < deadline) {
      if (exitInfo !== undefined) throw exitedError();
      try {
        const value = await check();
        if (value !== undefined) return value;
        last = 'not yet';
      } catch (error) {
        last = error instanceof Error ? error.message : String(error);
      }
      if (exitInfo !== undefined) throw exitedError();
      await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    }
    throw new Error(`${describe()}: timed out after ${timeoutMs} ms waiting for ${what} (last: ${last}); last log lines:\n${logTail()}`);
  }

  let adminHost = '';
  let adminPort = 0;
  async function admin(pathAndQuery: string, method = 'GET'): Promise<{ status: number; body: string }> {
    if (adminPort === 0) throw new Error(`${describe()}: admin address not known yet`);
    const res = await httpRequest({ host: adminHost, port: adminPort, path: pathAndQuery, method, timeoutMs: 5000 });
    return { status: res.status, body: res.body };
  }
  async function adminOk(pathAndQuery: string): Promise<string> {
    const res = await admin(pathAndQuery);
    if (res.status !== 200) throw new Error(`admin ${pathAndQuery} answered ${res.status}: ${res.body.slice(0, 500)}`);
    return res.body;
  }

  async function waitForAdmin(timeoutMs = DEFAULT_START_TIMEOUT_MS): Promise<void> {
    await pollUntil('the admin address file', timeoutMs, async () => {
      if (adminPort !== 0) return true;
      const text = fs.existsSync(adminPath) ? fs.readFileSync(adminPath, 'utf8').trim() : '';
      const colon = text.lastIndexOf(':');
      if (colon <= 0) return undefined;
      adminHost = text.slice(0, colon).replace(/^\[|\]$/g, '');
      adminPort = Number(text.slice(colon + 1));
      return true;
    });
    await pollUntil('the admin endpoint', timeoutMs, async () => {
      await admin('/ready');
      return true;
    });
  }

  async function serverState(): Promise<string> {
    return (await admin('/ready')).body.trim();
  }

  async function waitReady(timeoutMs = DEFAULT_START_TIMEOUT_MS): Promise<void> {
    let state = '';
    await pollUntil('/ready to answer 200 LIVE', timeoutMs, async () => {
      const res = await admin('/ready');
      state = res.body.trim();
      if (res.status === 200 && state === 'LIVE') return true;
      throw new Error(`server state ${state} (${res.status})`);
    });
  }

  async function stats(filter?: string): Promise<Map<string, number>> {
    const query = filter !== undefined ? `&filter=${encodeURIComponent(filter)}` : '';
    const parsed = JSON.parse(await adminOk(`/stats?format=json${query}`)) as { stats?: Array<{ name?: string; value?: unknown }> };
    const result = new Map<string, number>();
    for (const entry of parsed.stats ?? []) {
      if (typeof entry.name === 'string' && typeof entry.value === 'number') result.set(entry.name, entry.value);
    }
    return result;
  }

  async function stat(name: string): Promise<number | undefined> {
    return (await stats(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`)).get(name);
  }

  let stopping: Promise<EnvoyExit> | undefined;
  async function stop(graceMs = DEFAULT_STOP_GRACE_MS): Promise<EnvoyExit> {
    stopping ??= (async () => {
      if (exitInfo === undefined) {
        child.kill('SIGTERM');
        if (!(await settlesWithin(exited, graceMs))) {
          ring.write('harness', `[harness] no exit ${graceMs} ms after SIGTERM: SIGKILL\n`);
          child.kill('SIGKILL');
        }
      }
      // SIGKILL cannot be caught; the bound only guards against a stuck pipe.
      if (!(await settlesWithin(exited, 10_000))) throw new Error(`${describe()}: still not exited 10 s after SIGKILL`);
      if (keep) process.stderr.write(`[e2e] kept artifacts of envoy ${options.name} in ${dir}\n`);
      else fs.rmSync(dir, { recursive: true, force: true });
      return exitInfo as EnvoyExit;
    })();
    return stopping;
  }

  const handle: EnvoyProcess = {
    name: options.name,
    get pid() {
      return child.pid ?? -1;
    },
    get adminHost() {
      return adminHost;
    },
    get adminPort() {
      return adminPort;
    },
    dir,
    exited,
    get running() {
      return exitInfo === undefined;
    },
    logs: (lines?: number) => ring.tail(lines).join('\n'),
    admin,
    waitForAdmin,
    serverState,
    waitReady,
    async configDump(params?: string) {
      const query = params === undefined || params === '' ? '' : params.startsWith('?') ? params : `?${params}`;
      return JSON.parse(await adminOk(`/config_dump${query}`));
    },
    stats,
    stat,
    async waitForStat(name, predicate, timeoutMs = 10_000) {
      let last: number | undefined;
      try {
        return await pollUntil(`stat ${name}`, timeoutMs, async () => {
          last = await stat(name);
          // Wrapped so that a satisfied predicate on an undefined stat still ends the wait.
          return predicate(last) ? { value: last } : undefined;
        }).then((r) => r.value);
      } catch (error) {
        if (exitInfo !== undefined) throw error;
        throw new Error(`${describe()}: stat ${name} did not satisfy the predicate within ${timeoutMs} ms (last value: ${last})`, {
          cause: error,
        });
      }
    },
    async listenerPort(listenerName: string) {
      const parsed = JSON.parse(await adminOk('/listeners?format=json')) as {
        listener_statuses?: Array<{ name?: string; local_address?: { socket_address?: { port_value?: number } } }>;
      };
      const statuses = parsed.listener_statuses ?? [];
      const port = statuses.find((l) => l.name === listenerName)?.local_address?.socket_address?.port_value;
      if (port === undefined) {
        throw new Error(`${describe()}: no listener ${listenerName} (have: ${statuses.map((l) => l.name).join(', ') || 'none'})`);
      }
      return port;
    },
    clusters: () => adminOk('/clusters'),
    stop,
  };

  try {
    await waitForAdmin(options.startTimeoutMs);
    if (options.waitReady ?? true) await waitReady(options.startTimeoutMs);
  } catch (error) {
    await stop();
    throw error;
  }
  return handle;
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
