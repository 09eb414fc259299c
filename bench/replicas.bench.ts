// Replicas on etcd (issue 16): three `serve --config-store etcd --ca-store etcd` replicas (config
// and one shared CA in etcd, every SVID journaled there), each in its own process with its own
// fleet of P simulated proxies (the real-path fleet: TLS, a token each, ADS SotW with
// all five types, every response ACKed), against one replica reading files and serving P, in the
// same run and on the same config (3P workloads). This machine has two cores, so the replicas'
// fleets cold-start ONE AFTER ANOTHER: while one replica's fleet connects, the other two replicas
// are running, connected to etcd and watching, with their own fleets either not yet connected or
// settled; each replica's cold start and memory per proxy is then set against the lone replica's.
// Starting all three fleets at once would measure six busy processes on two cores, not
// replication. Also measures the time from `meshpilot apply` (applyToStore, what the CLI runs) to
// every proxy on every replica ACKing the change. BENCH_REPLICA_PROXIES sets P, the proxies per
// replica (default 100, so that `make bench` stays short); etcd is one member here (the kit's TLS
// with client certificates), the e2e test runs three.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyToStore, createEtcdObjectStore } from '../src/config/index.js';
import { createEtcdClient, parseEtcdConnection } from '../src/store/index.js';
import { startEtcdCluster, type EtcdCluster } from '../src/store/etcd-kit.js';
import { forkChild, type Child } from './lib/child.js';
import type { Memory } from './lib/measure.js';
import { writeMeshConfig, type BenchWorkload, type MeshConfigDir } from './lib/mesh-config.js';
import type { Arrivals, RealFleetCommand, RealFleetReply, Target } from './lib/real-fleet-protocol.js';
import type { RealServerCommand, RealServerReply } from './lib/real-server.js';
import { result, type BenchResult } from './lib/report.js';

const PER = Number(process.env.BENCH_REPLICA_PROXIES ?? 100);
const REPLICAS = 3;
// Every wait is bounded; a child that does not answer in time is killed (forkChild's sendTimeoutMs).
const COLD_CAP_MS = Math.max(240_000, PER * 300);
const CHANGE_CAP_MS = Math.max(120_000, PER * 100);
const KiB = 1024;
const benchStart = performance.now();
/** One line on stderr per phase, so a long run shows where its time goes. */
const phase = (what: string) => console.error(`replicas bench +${((performance.now() - benchStart) / 1000).toFixed(1)} s: ${what}`);

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
  phase(`server started on port ${port}; minting ${s.proxies.length} tokens`);
  const { tokens } = await s.server.send({ cmd: 'mint', accounts: s.proxies.map((w) => [w.namespace, w.serviceAccount] as const) });
  s.target = { address: `127.0.0.1:${port}`, serverName: 'localhost', rootPem: rootPem! };
  s.tokens = tokens!;
}

/** Takes the server's memory (after a settled GC) and opens every proxy's stream. */
async function connect(s: Served): Promise<void> {
  s.before = (await s.server.send({ cmd: 'memory' })).memory!;
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
  /** Stream errors the fleet saw during cold start, with the first few messages. */
  readonly errors: string;
}

async function coldAndMemory(s: Served): Promise<ColdRun> {
  phase(`${s.proxies.length} streams opened; waiting for every proxy to ACK all five types`);
  const ready = await s.fleet.send({ cmd: 'await-ready', timeoutMs: COLD_CAP_MS });
  phase(`cold start done: ${ready.errors} stream errors`);
  const after = (await s.server.send({ cmd: 'memory' })).memory!;
  const n = s.proxies.length;
  return {
    cold: coldSeconds(ready.arrivals!),
    rssPerProxy: (after.rss - s.before!.rss) / n,
    heapPerProxy: (after.heapUsed - s.before!.heapUsed) / n,
    errors: ready.errors === 0 ? '' : `${ready.errors} stream errors (${ready.errorSamples.join('; ')})`,
  };
}

async function stop(s: Served): Promise<void> {
  await s.fleet.send({ cmd: 'close' }).catch(() => undefined);
  await s.fleet.stop();
  await s.server.send({ cmd: 'stop' }).catch(() => undefined);
  await s.server.stop();
}

// Every replica seals and unseals the shared CA's keys with the same key, as `--ca-store-key` gives it.
const caStoreKeyHex = randomBytes(32).toString('hex');
function etcdArgs(c: EtcdCluster) {
  return { endpoints: c.endpoints.join(','), ca: c.tls.caFile, cert: c.tls.certFile, key: c.tls.keyFile, caStoreKeyHex };
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

const ratioNote = (xs: readonly number[], base: number, fmt: (x: number) => string) =>
  xs.map((x) => `${fmt(x)} (${(x / base).toFixed(2)}×)`).join(', ');

/** Runs the replicas benchmark. */
export async function run(): Promise<BenchResult[]> {
  const per = PER;
  const n = per * REPLICAS;
  let cfg: MeshConfigDir | undefined;
  let cluster: EtcdCluster | undefined;
  const out: BenchResult[] = [];
  try {
    cfg = writeMeshConfig(n);
    phase(`config for ${n} workloads written; starting the baseline`);
    const thirds = Array.from({ length: REPLICAS }, (_, i) => cfg!.workloads.slice(i * per, (i + 1) * per));

    // Baseline: one replica on files (no etcd, no other replica), serving the same number of
    // proxies from the same config as each replica below.
    const alone: Served = { server: serverProcess(), fleet: fleetProcess(), proxies: thirds[0]! };
    let base: ColdRun;
    try {
      await prepare(alone, { cmd: 'start', configDir: cfg.dir });
      await connect(alone);
      base = await coldAndMemory(alone);
    } finally {
      await stop(alone);
    }

    // Three replicas on etcd, all started and watching; their fleets cold-start one after another.
    phase('baseline done; starting etcd');
    cluster = await startEtcdCluster({ members: 1 });
    await applyFiles(cluster, yamlFiles(cfg.dir));
    phase('config applied to etcd; starting the replicas');
    const replicas: Served[] = thirds.map((proxies) => ({ server: serverProcess(), fleet: fleetProcess(), proxies }));
    try {
      for (const r of replicas) await prepare(r, { cmd: 'start', configDir: cfg.dir, etcd: etcdArgs(cluster) });
      const each: ColdRun[] = [];
      for (const r of replicas) {
        await connect(r);
        each.push(await coldAndMemory(r));
      }
      const setup = `${REPLICAS} replicas on etcd (one member; config and one shared CA in it) with ${per} proxies each (${n} in all), every replica and every fleet its own process, against one replica on files (its CA in memory) serving ${per} from the same config, in the same run; the replicas' fleets cold-start one after another (the other replicas running and watching etcd, their fleets not yet connected or settled), so that two cores are not shared by six busy processes`;
      const worst = (f: (e: ColdRun) => number) => Math.max(...each.map(f));
      out.push(
        result({
          name: `replicas.coldstart.${per}_per_replica`,
          value: worst((e) => e.cold),
          unit: 's',
          baseline: { name: `one replica on files, ${per} proxies`, value: base.cold },
          target: '≤ 1.3',
          note: `${setup}; until the last proxy of the replica ACKed all five types; the slowest replica; per replica ${ratioNote(
            each.map((e) => e.cold),
            base.cold,
            (x) => `${x.toFixed(2)} s`,
          )}${[base, ...each].some((e) => e.errors) ? `; errors: ${[base, ...each].map((e) => e.errors || 'none').join(' | ')}` : ''}`,
        }),
      );
      out.push(
        result({
          name: `replicas.rss_per_proxy.${per}_per_replica`,
          value: worst((e) => e.rssPerProxy) / KiB,
          unit: 'KiB',
          baseline: { name: `one replica on files, ${per} proxies`, value: base.rssPerProxy / KiB },
          target: '≤ 1.3',
          note: `server RSS growth from just before its fleet connected to after cold start, per connected proxy; the largest replica; per replica ${ratioNote(
            each.map((e) => e.rssPerProxy),
            base.rssPerProxy,
            (x) => `${(x / KiB).toFixed(0)} KiB`,
          )}`,
        }),
      );
      out.push(
        result({
          name: `replicas.heap_per_proxy.${per}_per_replica`,
          value: worst((e) => e.heapPerProxy) / KiB,
          unit: 'KiB',
          baseline: { name: `one replica on files, ${per} proxies`, value: base.heapPerProxy / KiB },
          target: '≤ 1.3',
          note: `V8 heap after a settled GC, growth per connected proxy; the largest replica; per replica ${ratioNote(
            each.map((e) => e.heapPerProxy),
            base.heapPerProxy,
            (x) => `${(x / KiB).toFixed(0)} KiB`,
          )}`,
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
      const appliedMs = performance.timeOrigin + performance.now() - t0;
      phase('change applied; waiting for every proxy on every replica to ACK it');
      const [marks, models] = await Promise.all([
        Promise.all(replicas.map((r) => r.fleet.send({ cmd: 'await-marker', timeoutMs: CHANGE_CAP_MS }))),
        Promise.all(
          replicas.map((r) =>
            r.server.send({
              cmd: 'await-model',
              kind: change.kind,
              namespace: change.namespace,
              name: change.name,
              timeoutMs: CHANGE_CAP_MS,
            }),
          ),
        ),
      ]);
      const acks = marks.map((m) => m.arrivals!.atMs.map((t) => (t === null ? Number.POSITIVE_INFINITY : t) - t0));
      const lasts = acks.map((a) => Math.max(...a));
      const secs = (xs: readonly number[]) => xs.map((x) => (x / 1000).toFixed(2)).join(', ');
      out.push(
        result({
          name: `replicas.apply_to_all_acked.${per}_per_replica`,
          value: Math.max(...lasts) / 1000,
          unit: 's',
          baseline: { name: 'the fastest replica', value: Math.min(...lasts) / 1000 },
          note: `${n} proxies on ${REPLICAS} replicas, all connected; from applyToStore starting (read, check against the store, one transaction) until the last proxy of every replica ACKed CDS, EDS and RDS holding the new Service; per replica ${secs(lasts)} s; where the time went: the apply returned at ${secs([appliedMs])} s, each replica had the new model at ${secs(
            models.map((m) => m.atMs! - t0),
          )} s, its first proxy ACKed at ${secs(acks.map((a) => Math.min(...a)))} s; the store source's debounce (50 ms) and the push debounce are included; the three replicas push at once here, sharing two cores`,
          ...(marks.some((m) => m.arrivals!.timedOut) ? { timedOut: true } : {}),
        }),
      );
    } finally {
      for (const r of replicas) await stop(r);
    }
  } catch (e) {
    out.push(
      result({
        name: `replicas.coldstart.${per}_per_replica`,
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
