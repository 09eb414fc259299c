// Test hosts for capture mode: one network namespace per workload, joined by veth pairs to a bridge
// that lives in its own "hub" namespace, so nothing touches the host's interfaces. Addresses are in
// 10.231.<n>.0/24 and exist only inside the namespaces made here. Everything made is removed at the
// end, on failure too (mocha after hooks, a process exit hook, and a sweep of leftovers at start).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LineRing } from '../harness/line-ring.js';

/** Prefix of every namespace, veth and /etc/netns entry the kit makes; the sweep removes only these. */
export const KIT_PREFIX = 'mpcap-';
/** Envoy's user id in capture mode, as Istio's. */
export const PROXY_UID = 1337;
const PROXY_USER = 'istio-proxy';
const SETUP_TIMEOUT_MS = 20_000;
const KEPT_LINES = 500;

/** How the machine can run workloads: in namespaces (root) or on loopback aliases, with the reason. */
export type NetMode = { readonly kind: 'netns' } | { readonly kind: 'loopback'; readonly reason: string };

/** The outcome of a command run to completion inside a namespace. */
export interface ExecResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A long-running process inside a namespace, with its output kept (bounded). */
export interface NsProcess {
  readonly name: string;
  readonly pid: number;
  readonly running: boolean;
  logs(lines?: number): string;
  /** Resolves when some output line satisfies the predicate; rejects if the process exits first or on timeout. */
  waitForLine(pred: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** SIGTERM, SIGKILL after the grace; idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/** How to run a command in a namespace. */
export interface RunAs {
  /** Run as this uid (and gid) via setpriv, e.g. {@link PROXY_UID}; default: as this process. */
  readonly uid?: number;
  readonly timeoutMs?: number;
}

/** One workload's network namespace. */
export interface TestHost {
  readonly role: string;
  readonly ns: string;
  readonly ip: string;
  /** Runs argv inside the namespace to completion (bounded by timeoutMs, default 20 s). */
  exec(argv: readonly string[], o?: RunAs): Promise<ExecResult>;
  /** Starts argv inside the namespace; the kit stops it at teardown. */
  spawn(name: string, argv: readonly string[], o?: RunAs): NsProcess;
  /** Writes /etc/netns/<ns>/hosts, which `ip netns exec` mounts over /etc/hosts; the kit removes it. */
  writeHosts(text: string): void;
  /** Returns `iptables-save -t nat` of the namespace, comments and counters removed, for comparisons. */
  natTable(): Promise<string>;
}

/** A set of test hosts on one bridge; `destroy` removes all of it. */
export interface TestNet {
  readonly hub: string;
  /** The first three octets of the /24, e.g. `10.231.17`. */
  readonly subnet: string;
  /** Adds a namespace for `role` with its veth on the bridge, loopback up, and a default route via the bridge. */
  addHost(role: string): TestHost;
  /**
   * Joins the root namespace to the bridge with a veth holding `<subnet>.2`, so that a process of the
   * test (an in-process control plane) can listen where the hosts reach it. The address exists only
   * while the test net does: the pair goes with the hub namespace. Returns the address; idempotent.
   */
  addRootLink(): string;
  /** An address in the subnet that no host holds, for service VIPs (index 0..49). */
  vip(index: number): string;
  /** Stops every process and removes namespaces, veths and hosts files; idempotent, never throws. */
  destroy(): Promise<void>;
}

function run(argv: readonly string[], input?: string, timeoutMs = SETUP_TIMEOUT_MS): ExecResult {
  const r = spawnSync(argv[0], argv.slice(1), { input, encoding: 'utf8', timeout: timeoutMs });
  if (r.error !== undefined) return { status: null, stdout: '', stderr: r.error.message };
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function must(argv: readonly string[]): string {
  const r = run(argv);
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

const has = (cmd: string) => run(['sh', '-c', `command -v ${cmd}`]).status === 0;

/** Says whether capture tests can run here: root, `ip`, iptables and setpriv present, and a namespace can be made. */
export function netMode(): NetMode {
  if (process.getuid?.() !== 0) return { kind: 'loopback', reason: 'not root: network namespaces and iptables need root' };
  const missing = ['ip', 'iptables-restore', 'iptables-save', 'setpriv'].filter((c) => !has(c));
  if (missing.length > 0) return { kind: 'loopback', reason: `missing ${missing.join(', ')} (make test-e2e installs iptables)` };
  const probe = `${KIT_PREFIX}${process.pid}-probe`;
  const made = run(['ip', 'netns', 'add', probe]);
  run(['ip', 'netns', 'del', probe]);
  if (made.status !== 0) return { kind: 'loopback', reason: `cannot create a network namespace: ${made.stderr.trim()}` };
  return { kind: 'netns' };
}

/** Creates the proxy user (uid 1337, no home, no shell) when absent; it is kept, like the user in Istio's proxy image. */
export function ensureProxyUser(): void {
  if (run(['getent', 'passwd', String(PROXY_UID)]).status === 0) return;
  must(['useradd', '-u', String(PROXY_UID), '-M', '-s', '/usr/sbin/nologin', PROXY_USER]);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Prefix of the kit's temp dirs (Envoy bootstraps); like namespaces they carry the owner's pid. */
export const TMP_PREFIX = 'meshpilot-capture-';

/**
 * Removes what kit runs whose process is gone left behind (names carry the owner's pid): the
 * processes inside their namespaces, the namespaces, hosts files and temp dirs.
 */
export function sweepLeftovers(): string[] {
  const names = new Set<string>();
  for (const line of run(['ip', 'netns', 'list']).stdout.split('\n')) {
    const name = line.split(' ')[0];
    if (name.startsWith(KIT_PREFIX)) names.add(name);
  }
  if (fs.existsSync('/etc/netns')) for (const d of fs.readdirSync('/etc/netns')) if (d.startsWith(KIT_PREFIX)) names.add(d);
  const swept: string[] = [];
  for (const name of names) {
    const pid = Number(name.slice(KIT_PREFIX.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) continue;
    // A namespace outlives `ip netns del` while processes run in it: end those first.
    for (const p of run(['ip', 'netns', 'pids', name]).stdout.split('\n').map(Number)) {
      if (Number.isInteger(p) && p > 0) killQuietly(p);
    }
    run(['ip', 'netns', 'del', name]);
    fs.rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
    swept.push(name);
  }
  for (const d of fs.readdirSync(os.tmpdir())) {
    if (!d.startsWith(TMP_PREFIX)) continue;
    const pid = Number(d.slice(TMP_PREFIX.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && !pidAlive(pid)) fs.rmSync(path.join(os.tmpdir(), d), { recursive: true, force: true });
  }
  return swept;
}

// Everything alive, for the synchronous exit hook.
const liveNets = new Set<{ destroyNow(): void }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const n of liveNets) n.destroyNow();
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const n of liveNets) n.destroyNow();
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

function asUser(argv: readonly string[], uid: number | undefined): string[] {
  if (uid === undefined) return [...argv];
  return ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', ...argv];
}

/** Creates the hub namespace and its bridge on a random 10.231.<n>.0/24; call addHost for each workload. */
export function createTestNet(): TestNet {
  installExitHook();
  sweepLeftovers();
  const id = randomBytes(3).toString('hex');
  const base = `${KIT_PREFIX}${process.pid}-${id}`;
  const subnet = `10.231.${randomBytes(1)[0]}`;
  const hub = `${base}-hub`;
  const namespaces: string[] = [];
  const processes = new Set<NsProcess & { kill(): void }>();
  let hosts = 0;
  let destroyed = false;
  let rootLink: string | undefined;

  function destroyNow(): void {
    if (destroyed) return;
    destroyed = true;
    liveNets.delete(net);
    for (const p of processes) p.kill();
    if (rootLink !== undefined) run(['ip', 'link', 'del', rootLink]);
    // Deleting a namespace destroys its ends of the veth pairs, and with them the peers.
    for (const ns of [...namespaces].reverse()) {
      run(['ip', 'netns', 'del', ns]);
      fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
  }
  const net = { destroyNow };
  liveNets.add(net);

  function addNamespace(ns: string): void {
    must(['ip', 'netns', 'add', ns]);
    namespaces.push(ns);
    must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }

  try {
    addNamespace(hub);
    must(['ip', '-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
    must(['ip', '-n', hub, 'addr', 'add', `${subnet}.1/24`, 'dev', 'br0']);
    must(['ip', '-n', hub, 'link', 'set', 'br0', 'up']);
  } catch (e) {
    destroyNow();
    throw e;
  }

  function spawnIn(ns: string, name: string, argv: readonly string[], o: RunAs = {}): NsProcess {
    const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, ...asUser(argv, o.uid)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const ring = new LineRing(KEPT_LINES);
    const waiters = new Set<() => void>();
    let exited = false;
    const done = new Promise<void>((resolve) =>
      child.once('close', () => {
        exited = true;
        ring.flush();
        for (const w of waiters) w();
        resolve();
      }),
    );
    child.once('error', (e) => ring.write('kit', `[kit] spawn error: ${e.message}\n`));
    for (const [stream, s] of [
      ['stdout', child.stdout],
      ['stderr', child.stderr],
    ] as const) {
      s?.setEncoding('utf8');
      s?.on('data', (chunk: string) => {
        ring.write(stream, chunk);
        for (const w of waiters) w();
      });
    }
    let stopping: Promise<void> | undefined;
    const p = {
      name,
      pid: child.pid ?? -1,
      get running() {
        return !exited;
      },
      logs: (lines?: number) => ring.tail(lines).join('\n'),
      waitForLine(pred: (line: string) => boolean, timeoutMs = 10_000) {
        return new Promise<string>((resolve, reject) => {
          const check = () => {
            const hit = ring.tail().find(pred);
            if (hit !== undefined) finish(() => resolve(hit));
            else if (exited)
              finish(() => reject(new Error(`${name} exited before the expected line; output:\n${ring.tail(40).join('\n')}`)));
          };
          const timer = setTimeout(
            () => finish(() => reject(new Error(`${name}: no expected line within ${timeoutMs} ms; output:\n${ring.tail(40).join('\n')}`))),
            timeoutMs,
          );
          const finish = (f: () => void) => {
            clearTimeout(timer);
            waiters.delete(check);
            f();
          };
          waiters.add(check);
          check();
        });
      },
      stop(graceMs = 5000) {
        stopping ??= (async () => {
          if (!exited) {
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
            await done;
            clearTimeout(timer);
          }
          processes.delete(p);
        })();
        return stopping;
      },
      kill() {
        if (!exited) child.kill('SIGKILL');
      },
    };
    processes.add(p);
    return p;
  }

  function execIn(ns: string, argv: readonly string[], o: RunAs = {}): Promise<ExecResult> {
    return new Promise((resolve) => {
      const child = spawn('ip', ['netns', 'exec', ns, ...asUser(argv, o.uid)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
      const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? SETUP_TIMEOUT_MS);
      child.once('error', (e) => (stderr += e.message));
      child.once('close', (status) => {
        clearTimeout(timer);
        resolve({ status, stdout, stderr });
      });
    });
  }

  return {
    hub,
    subnet,
    addHost(role) {
      if (destroyed) throw new Error('test net already destroyed');
      if (hosts >= 100) throw new Error('a test net holds at most 100 hosts');
      const index = ++hosts;
      const ns = `${base}-${role}`;
      // Interface names are at most 15 bytes: keep the hub side short and call the inside one eth0.
      const veth = `mpv${id}${index}`;
      const ip = `${subnet}.${10 + index}`;
      addNamespace(ns);
      // Created directly between the two namespaces, so the host's own namespace never sees it.
      must(['ip', 'link', 'add', veth, 'netns', hub, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      must(['ip', '-n', hub, 'link', 'set', veth, 'master', 'br0', 'up']);
      must(['ip', '-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      must(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
      must(['ip', '-n', ns, 'route', 'add', 'default', 'via', `${subnet}.1`]);
      return {
        role,
        ns,
        ip,
        exec: (argv, o) => execIn(ns, argv, o),
        spawn: (name, argv, o) => spawnIn(ns, name, argv, o),
        writeHosts(text) {
          fs.mkdirSync(`/etc/netns/${ns}`, { recursive: true });
          fs.writeFileSync(`/etc/netns/${ns}/hosts`, text);
        },
        async natTable() {
          const r = await execIn(ns, ['iptables-save', '-t', 'nat']);
          if (r.status !== 0) throw new Error(`iptables-save in ${ns} failed: ${r.stderr}`);
          return r.stdout
            .split('\n')
            .filter((l) => !l.startsWith('#'))
            .map((l) => l.replace(/\[\d+:\d+\]/, '[0:0]'))
            .join('\n');
        },
      };
    },
    addRootLink() {
      if (destroyed) throw new Error('test net already destroyed');
      const address = `${subnet}.2`;
      if (rootLink !== undefined) return address;
      const root = `mpr${id}`;
      // Made with its peer already in the hub, so only the root end is ever in this namespace.
      must(['ip', 'link', 'add', root, 'type', 'veth', 'peer', 'name', `mph${id}`, 'netns', hub]);
      rootLink = root;
      must(['ip', '-n', hub, 'link', 'set', `mph${id}`, 'master', 'br0', 'up']);
      must(['ip', 'addr', 'add', `${address}/24`, 'dev', root]);
      must(['ip', 'link', 'set', root, 'up']);
      return address;
    },
    vip(index) {
      if (!Number.isInteger(index) || index < 0 || index >= 50) throw new Error(`vip index ${index} outside 0..49`);
      // .200-.249: inside the test's own /24, held by no host, so uncaptured traffic to it goes nowhere.
      return `${subnet}.${200 + index}`;
    },
    async destroy() {
      await Promise.allSettled([...processes].map((p) => p.stop(2000)));
      destroyNow();
    },
  };
}
