// Replicas on etcd (issue 16): N simulated proxies (the real-path fleet: TLS, a token each, ADS
// SotW with all five types, every response ACKed) spread over three `serve --config-store etcd`
// replicas, each in its own process, against one replica reading files and serving a third of
// them, in the same run. Measures cold start and RSS per proxy per replica, and the time from
// `meshpilot apply` (applyToStore, what the CLI runs) to every proxy on every replica ACKing the
// change. BENCH_REPLICA_PROXIES sets N (default 300, so that `make bench` stays short); etcd is
// one member here (the kit's TLS with client certificates), the e2e test runs three.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyToStore, createEtcdObjectStore } from '../src/config/index.js';
import { createEtcdClient, parseEtcdConnection } from '../src/store/index.js';
import { startEtcdCluster, type EtcdCluster } from '../src/store/etcd-kit.js';
import { forkChild, type Child } from './lib/child.js';
import { median, type Memory } from './lib/measure.js';
import { writeMeshConfig, type BenchWorkload, type MeshConfigDir } from './lib/mesh-config.js';
import type { Arrivals, RealFleetCommand, RealFleetReply, Target } from './lib/real-fleet-protocol.js';
import type { RealServerCommand, RealServerReply } from './lib/real-server.js';
import { result, type BenchResult } from './lib/report.js';

const N = Number(process.env.BENCH_REPLICA_PROXIES ?? 300);
const REPLICAS = 3;
const COLD_CAP_MS = 240_000;
const CHANGE_CAP_MS = 120_000;
const KiB = 1024;

type Fleet = Child<RealFleetCommand, RealFleetReply>;
type Server = Child<RealServerCommand, RealServerReply>;
const here = (file: string) => new URL(`./lib/${file}`, import.meta.url);
const serverProcess = (): Server =>
  forkChild(here('real-server.js'), { execArgv: ['--expose-gc', '--max-old-space-size=4096'], sendTimeoutMs: COLD_CAP_MS + 60_000 });
const fleetProcess = (): Fleet =>
  forkChild(here('real-fleet-child.js'), { execArgv: ['--max-old-space-size=4096'], sendTimeoutMs: COLD_CAP_MS + 60_000 });

/** One replica (or the baseline server) with its own fleet of proxies. */
interface Served {
  readonly server: Server;
  readonly fleet: Fleet;
  readonly proxies: readonly BenchWorkload[];
  target?: Target;
  tokens?: readonly string[];
  before?: Memory;
}

const coldSeconds = (a: Arrivals): number => {
  const t = a.atMs.flatMap((x) => (x === null ? [] : [x - a.openedAtMs]));
  return a.timedOut || t.length === 0 ? Number.NaN : Math.max(...t) / 1000;
};

/** Starts the server and mints its proxies' tokens; the fleet connects later (connect()). */
async function prepare(s: Served, start: RealServerCommand): Promise<void> {
  const { port, rootPem } = await s.server.send(start);
  const { tokens } = await s.server.send({ cmd: 'mint', accounts: s.proxies.map((w) => [w.namespace, w.serviceAccount] as const) });
  s.target = { address: `127.0.0.1:${port}`, serverName: 'localhost', rootPem: rootPem! };
  s.tokens = tokens!;
  s.before = (await s.server.send({ cmd: 'memory' })).memory!;
}

async function connect(s: Served): Promise<void> {
  await s.fleet.send({
    cmd: 'open-ads',
    protocol: 'sotw',
    ...s.target!,
    proxies: s.proxies.map((w, i) => ({ nodeId: w.nodeId, token: s.tokens![i]! })),
  });
}

interface ColdRun {
  readonly cold: number;
  readonly rssPerProxy: number;
  readonly heapPerProxy: number;
}

async function coldAndMemory(s: Served): Promise<ColdRun> {
  const ready = await s.fleet.send({ cmd: 'await-ready', timeoutMs: COLD_CAP_MS });
  const after = (await s.server.send({ cmd: 'memory' })).memory!;
  const n = s.proxies.length;
  return {
    cold: coldSeconds(ready.arrivals!),
    rssPerProxy: (after.rss - s.before!.rss) / n,
    heapPerProxy: (after.heapUsed - s.before!.heapUsed) / n,
  };
}

async function stop(s: Served): Promise<void> {
  await s.fleet.send({ cmd: 'close' }).catch(() => undefined);
  await s.fleet.stop();
  await s.server.send({ cmd: 'stop' }).catch(() => undefined);
  await s.server.stop();
}

function etcdArgs(c: EtcdCluster) {
  return { endpoints: c.endpoints.join(','), ca: c.tls.caFile, cert: c.tls.certFile, key: c.tls.keyFile };
}

async function applyFiles(c: EtcdCluster, files: readonly string[]): Promise<void> {
  const cfg = parseEtcdConnection({
    etcdEndpoints: c.endpoints.join(','),
    etcdCa: c.tls.caFile,
    etcdCert: c.tls.certFile,
    etcdKey: c.tls.keyFile,
  });
  if (!cfg.ok || !cfg.value) throw new Error('etcd flags');
  const store = createEtcdObjectStore({
    client: createEtcdClient(cfg.value),
    prefix: cfg.value.prefix,
    endpoints: cfg.value.endpoints,
    ownsClient: true,
  });
  try {
    const r = await applyToStore(
      store,
      files.map((f) => ({ fileName: f, text: readFileSync(f, 'utf8') })),
    );
    if (!r.ok) throw new Error(`apply refused: ${r.diagnostics.map((d) => d.message).join('; ')}`);
  } finally {
    await store.close();
  }
}

const yamlFiles = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(dir, f));

/** Runs the replicas benchmark. */
export async function run(): Promise<BenchResult[]> {
  const per = Math.floor(N / REPLICAS);
  let cfg: MeshConfigDir | undefined;
  let cluster: EtcdCluster | undefined;
  const out: BenchResult[] = [];
  try {
    cfg = writeMeshConfig(N);
    const thirds = Array.from({ length: REPLICAS }, (_, i) => cfg!.workloads.slice(i * per, (i + 1) * per));

    // Baseline: one replica on files, serving a third of the proxies.
    const alone: Served = { server: serverProcess(), fleet: fleetProcess(), proxies: thirds[0]! };
    let base: ColdRun;
    try {
      await prepare(alone, { cmd: 'start', configDir: cfg.dir });
      await connect(alone);
      base = await coldAndMemory(alone);
    } finally {
      await stop(alone);
    }

    // Three replicas on etcd, each serving a third, all at once.
    cluster = await startEtcdCluster({ members: 1 });
    await applyFiles(cluster, yamlFiles(cfg.dir));
    const replicas: Served[] = thirds.map((proxies) => ({ server: serverProcess(), fleet: fleetProcess(), proxies }));
    try {
      for (const r of replicas) await prepare(r, { cmd: 'start', configDir: cfg.dir, etcd: etcdArgs(cluster) });
      // Every fleet opens its streams at once, as sidecars of a whole mesh starting would.
      await Promise.all(replicas.map(connect));
      const each = await Promise.all(replicas.map(coldAndMemory));
      const cold = Math.max(...each.map((e) => e.cold));
      const rss = median(each.map((e) => e.rssPerProxy));
      const heap = median(each.map((e) => e.heapPerProxy));
      const setup = `${N} proxies over ${REPLICAS} replicas (${per} each, one process per replica and per fleet, on one machine) against one replica on files serving ${per}`;
      out.push(
        result({
          name: `replicas.coldstart.${N}`,
          value: cold,
          unit: 's',
          baseline: { name: `one replica, ${per} proxies`, value: base.cold },
          target: '≤ 1.3',
          note: `${setup}; until the last proxy of every replica ACKed all five types; the replicas share the machine's cores, so the ratio includes CPU contention: per replica ${each.map((e) => e.cold.toFixed(2)).join(', ')} s`,
        }),
      );
      out.push(
        result({
          name: `replicas.rss_per_proxy.${N}`,
          value: rss / KiB,
          unit: 'KiB',
          baseline: { name: `one replica, ${per} proxies`, value: base.rssPerProxy / KiB },
          target: '≤ 1.3',
          note: `${setup}; server RSS growth from before the fleet connected to after cold start, per connected proxy, median over replicas: ${each.map((e) => (e.rssPerProxy / KiB).toFixed(0)).join(', ')} KiB`,
        }),
      );

      out.push(
        result({
          name: `replicas.heap_per_proxy.${N}`,
          value: heap / KiB,
          unit: 'KiB',
          baseline: { name: `one replica, ${per} proxies`, value: base.heapPerProxy / KiB },
          target: '≤ 1.3',
          note: `${setup}; V8 heap after a settled GC, growth per connected proxy, median over replicas: ${each.map((e) => (e.heapPerProxy / KiB).toFixed(0)).join(', ')} KiB (RSS at these sizes moves with one-time allocations)`,
        }),
      );

      // `meshpilot apply` of a new Service to every proxy on every replica ACKing it.
      const before = new Set(yamlFiles(cfg.dir));
      const change = cfg.addService(1);
      change.write();
      const added = yamlFiles(cfg.dir).filter((f) => !before.has(f));
      for (const r of replicas) await r.fleet.send({ cmd: 'expect', marker: change.marker, types: ['cds', 'eds', 'rds'] });
      const t0 = performance.timeOrigin + performance.now();
      await applyFiles(cluster, added);
      const marks = await Promise.all(replicas.map((r) => r.fleet.send({ cmd: 'await-marker', timeoutMs: CHANGE_CAP_MS })));
      const lasts = marks.map((m) => Math.max(...m.arrivals!.atMs.map((t) => (t === null ? Number.POSITIVE_INFINITY : t))) - t0);
      const all = Math.max(...lasts);
      out.push(
        result({
          name: `replicas.apply_to_all_acked.${N}`,
          value: all / 1000,
          unit: 's',
          baseline: { name: 'the fastest replica', value: Math.min(...lasts) / 1000 },
          note: `from applyToStore starting (read, check against the store, one transaction) until the last proxy of every replica ACKed CDS, EDS and RDS holding the new Service; per replica ${lasts.map((x) => (x / 1000).toFixed(2)).join(', ')} s; the store source's debounce (50 ms) and the push debounce are included`,
          ...(marks.some((m) => m.arrivals!.timedOut) ? { timedOut: true } : {}),
        }),
      );
    } finally {
      for (const r of replicas) await stop(r);
    }
  } catch (e) {
    out.push(
      result({
        name: `replicas.coldstart.${N}`,
        value: Number.NaN,
        unit: 's',
        baseline: { name: 'none', value: Number.NaN },
        skipped: `failed: ${(e as Error).message}`,
      }),
    );
  } finally {
    await cluster?.stop();
    cfg?.remove();
  }
  return out;
}
