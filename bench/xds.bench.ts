// xDS benches, all in one run so every ratio is against a baseline measured alongside:
//   - push latency: a config change to every connected proxy having ACKed it, against
//     the grpc-js write floor (same bytes, same streams, each client answering), plus
//     the server CPU each side spent on it;
//   - encodings per push: encodingCount() deltas against the distinct new
//     (resource, version) pairs pushed, which must be equal;
//   - memory per connected proxy: server heap and RSS, against a bare grpc-js stream.
// Simulated proxies live in a child process (lib/fleet.ts), so the server's process
// holds no client state and the clients get the second core.
import { sotwResponse, TypeUrl } from '../src/proto/index.js';
import { encodingCount, type Snapshot } from '../src/snapshot/index.js';
import { unwrap } from '../src/lib/index.js';
import { forkChild } from './lib/child.js';
import { ECHO_PATH, startEchoServer, type EchoServer } from './lib/echo-server.js';
import { startFleet, type Fleet } from './lib/fleet.js';
import { CLUSTERS, MeshView, messageSizes, startControlPlane, type BenchControlPlane } from './lib/mesh.js';
import { collect, cpuMs, median, nowMs, waitFor, type Memory } from './lib/measure.js';
import type { MemoryCommand, MemoryReply } from './lib/memory-server.js';
import { result, type BenchResult } from './lib/report.js';

/** Streams per gRPC channel; each channel is its own HTTP/2 connection. */
const PER_CHANNEL = 100;
/** Timed pushes per proxy count; the median is reported. Untimed pushes go first. */
const PUSHES = 9;
const WARMUP_PUSHES = 2;
const PROXY_COUNTS = [1, 100, 1_000] as const;
const MEMORY_PROXIES = 1_000;
const MEMORY_WARMUP_PROXIES = 100;
const TIMEOUT_MS = 30_000;
const KiB = 1024;

/** One timed push, meshpilot's or the floor's. */
interface Sample {
  /** Wall time from the change to the last ACK (reply). */
  readonly ms: number;
  /** Wall time of the synchronous loop that builds and writes every message. */
  readonly fanOutMs: number;
  /** Server process CPU time over the push (the clients run in another process). */
  readonly cpuMs: number;
  /** The client fleet's CPU time over the push (read outside the timed span). */
  readonly clientCpuMs?: number;
}

interface PushSample extends Sample {
  readonly encodings: number;
  readonly newPairs: number;
}

/** A group of simulated proxies connected to meshpilot, all sharing `view`. */
class ProxyGroup {
  readonly #nodes: string[];
  constructor(
    private readonly cp: BenchControlPlane,
    private readonly fleet: Fleet,
    private readonly view: MeshView,
    private readonly prefix: string,
    count: number,
  ) {
    this.#nodes = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
  }

  /** Connects every proxy and waits until each has ACKed the current view. */
  async connect(): Promise<void> {
    const snap = this.view.snapshot;
    this.view.markPushed(snap);
    for (const n of this.#nodes) unwrap(this.cp.cache.set(n, snap));
    const acks = this.cp.expectAcks(snap.typeVersion(TypeUrl.Cluster), this.#nodes.length, TIMEOUT_MS);
    const count = this.#nodes.length;
    await this.fleet.send({
      cmd: 'open-ads',
      address: this.cp.address,
      count,
      perChannel: PER_CHANNEL,
      nodePrefix: this.prefix,
      typeUrl: TypeUrl.Cluster,
    });
    await acks;
    if (this.cp.xds.connected().length !== count) throw new Error(`xds: ${this.cp.xds.connected().length} streams, expected ${count}`);
  }

  /** One config change, timed from building the new snapshot to the last ACK. */
  async push(): Promise<PushSample> {
    const e0 = encodingCount();
    const c0 = cpuMs();
    const t0 = nowMs();
    const snap: Snapshot = this.view.change();
    const acks = this.cp.expectAcks(snap.typeVersion(TypeUrl.Cluster), this.#nodes.length, TIMEOUT_MS);
    const f0 = nowMs();
    for (const n of this.#nodes) unwrap(this.cp.cache.set(n, snap));
    const fanOutMs = nowMs() - f0;
    await acks;
    const ms = nowMs() - t0;
    return { ms, fanOutMs, cpuMs: cpuMs() - c0, encodings: encodingCount() - e0, newPairs: this.view.markPushed(snap) };
  }

  async close(): Promise<void> {
    await this.fleet.send({ cmd: 'close' });
    await waitFor(() => this.cp.xds.connected().length === 0, 'xds streams to close', TIMEOUT_MS);
    for (const n of this.#nodes) this.cp.cache.delete(n);
  }
}

/** A group of bare grpc-js streams on the floor server. */
class EchoGroup {
  constructor(
    private readonly echo: EchoServer,
    private readonly fleet: Fleet,
    private readonly count: number,
  ) {}

  async connect(replyBytes: number): Promise<void> {
    await this.fleet.send({
      cmd: 'open-echo',
      address: this.echo.address,
      path: ECHO_PATH,
      count: this.count,
      perChannel: PER_CHANNEL,
      replyBytes,
      ackLikeAds: true,
    });
    await waitFor(() => this.echo.ready() === this.count, 'echo streams to say hello', TIMEOUT_MS);
  }

  async push(msg: Buffer): Promise<Sample> {
    const c0 = cpuMs();
    const t0 = nowMs();
    const { writeMs } = await this.echo.broadcast(msg, TIMEOUT_MS);
    return { ms: nowMs() - t0, fanOutMs: writeMs, cpuMs: cpuMs() - c0 };
  }

  async close(): Promise<void> {
    await this.fleet.send({ cmd: 'close' });
    await this.echo.closeStreams();
  }
}

/** Pushes to both sides in turn (meshpilot, then floor), each from a collected heap, so drift and GC hit both alike. */
async function pushBoth(
  fleet: Fleet,
  group: ProxyGroup,
  echo: EchoGroup,
  floorMsg: Buffer,
  times: number,
): Promise<{ xds: PushSample[]; floor: Sample[] }> {
  const xds: PushSample[] = [];
  const floor: Sample[] = [];
  // The fleet's CPU is read before and after each push, outside the timed span.
  const withClientCpu = async <S extends Sample>(push: () => Promise<S>): Promise<S> => {
    await collect();
    const c0 = (await fleet.send({ cmd: 'stats' })).cpuMs;
    const s = await push();
    return { ...s, clientCpuMs: (await fleet.send({ cmd: 'stats' })).cpuMs - c0 };
  };
  for (let i = 0; i < times; i++) {
    xds.push(await withClientCpu(() => group.push()));
    floor.push(await withClientCpu(() => echo.push(floorMsg)));
  }
  return { xds, floor };
}

/**
 * Server memory before and after MEMORY_PROXIES streams, in a fresh process per side
 * (lib/memory-server.ts), so neither side inherits the other's heap or RSS high-water mark.
 */
async function serverMemory(fleet: Fleet, kind: 'xds' | 'echo'): Promise<{ before: Memory; after: Memory }> {
  const server = forkChild<MemoryCommand, MemoryReply>(new URL('./lib/memory-server.js', import.meta.url), {
    args: [kind],
    execArgv: ['--expose-gc'],
  });
  try {
    const { address, sizes } = await server.send({ cmd: 'start' });
    const cycle = async (prefix: string, count: number) => {
      await server.send({ cmd: 'prepare', prefix, count });
      if (kind === 'xds')
        await fleet.send({
          cmd: 'open-ads',
          address: address!,
          count,
          perChannel: PER_CHANNEL,
          nodePrefix: prefix,
          typeUrl: TypeUrl.Cluster,
        });
      else
        await fleet.send({ cmd: 'open-echo', address: address!, path: ECHO_PATH, count, perChannel: PER_CHANNEL, replyBytes: sizes!.ack });
      await server.send({ cmd: 'settle', count });
    };
    const close = async () => {
      await fleet.send({ cmd: 'close' });
      await server.send({ cmd: 'drain' });
    };
    // Warm-up, so compiled code and grpc-js's lazily built state count as neither side's per-stream cost.
    await cycle('warm-', MEMORY_WARMUP_PROXIES);
    await close();
    const before = (await server.send({ cmd: 'memory' })).memory!;
    await cycle('proxy-', MEMORY_PROXIES);
    const after = (await server.send({ cmd: 'memory' })).memory!;
    await close();
    return { before, after };
  } finally {
    await server.stop();
  }
}

/** Runs every xDS bench; resolves once every server, stream and child process is closed. */
export async function run(): Promise<BenchResult[]> {
  const fleet = await startFleet();
  const view = new MeshView();
  const sizes = messageSizes(view.snapshot);
  // The floor writes a real response of the same size, which its clients decode and ACK
  // like the ADS clients do, so the two sides differ only in the server.
  const snap = view.snapshot;
  const floorMsg = sotwResponse({
    versionInfo: snap.typeVersion(TypeUrl.Cluster),
    typeUrl: TypeUrl.Cluster,
    nonce: '1',
    chunks: [...snap.resources(TypeUrl.Cluster).values()].map((r) => r.sotwChunk()),
  });
  const pushes = new Map<number, { xds: PushSample[]; floor: Sample[] }>();
  const memory: Partial<Record<'xds' | 'echo', { before: Memory; after: Memory }>> = {};

  try {
    memory.xds = await serverMemory(fleet, 'xds');
    memory.echo = await serverMemory(fleet, 'echo');

    const cp = await startControlPlane();
    const echoServer = await startEchoServer();
    try {
      let groups = 0;
      for (const n of [...PROXY_COUNTS]) {
        const g = new ProxyGroup(cp, fleet, view, `g${++groups}-proxy-`, n);
        const e = new EchoGroup(echoServer, fleet, n);
        await g.connect();
        await e.connect(sizes.ack);
        await pushBoth(fleet, g, e, floorMsg, WARMUP_PUSHES);
        pushes.set(n, await pushBoth(fleet, g, e, floorMsg, PUSHES));
        await g.close();
        await e.close();
      }
    } finally {
      await cp.stop();
      await echoServer.stop();
    }
    const stats = await fleet.send({ cmd: 'stats' });
    if (stats.errors > 0) throw new Error(`fleet saw ${stats.errors} stream errors`);
    if (stats.lastResourceCount !== CLUSTERS) throw new Error(`a proxy got ${stats.lastResourceCount} clusters, not ${CLUSTERS}`);
  } finally {
    await fleet.stop();
  }

  const layout =
    `SotW ADS, wildcard CDS, ${CLUSTERS} clusters of ~${Math.round(sizes.response / CLUSTERS)} B (response ${sizes.response} B, ACK ${sizes.ack} B), ` +
    `${PER_CHANNEL} streams per gRPC channel (one HTTP/2 connection each), clients in a child process`;
  const results: BenchResult[] = [];
  for (const n of PROXY_COUNTS) {
    const p = pushes.get(n)!;
    results.push(
      result({
        name: `xds push latency, ${n} proxies`,
        value: median(p.xds.map((s) => s.ms)),
        unit: 'ms',
        baseline: { name: 'grpc-js write floor', value: median(p.floor.map((s) => s.ms)) },
        target: n === 1_000 ? 'ratio <= 1.5' : undefined,
        note:
          `median of ${PUSHES} pushes, one cluster changed each, meshpilot and floor alternating; meshpilot: new snapshot built and set through the cache for every node, until every proxy ACKed it; ` +
          `floor: the same ${floorMsg.length} B response, pre-encoded, written to ${n} bare bidi streams (identity serializers) whose clients decode it and answer a ${sizes.ack} B ACK as the ADS clients do. ${layout}. ` +
          `Samples: xds ${fmtSamples(p.xds)}; floor ${fmtSamples(p.floor)}`,
      }),
    );
    results.push(
      result({
        name: `xds push server CPU, ${n} proxies`,
        value: median(p.xds.map((s) => s.cpuMs)),
        unit: 'ms',
        baseline: { name: 'grpc-js floor server CPU', value: median(p.floor.map((s) => s.cpuMs)) },
        note:
          `median process.cpuUsage() of the server process over the same pushes: meshpilot's own cost, apart from the simulated clients and other load on the machine; ` +
          `client fleet CPU over the same pushes (median): xds ${median(p.xds.map((s) => s.clientCpuMs!)).toFixed(1)} ms (decodes DiscoveryResponse with the generated types, encodes the ACK), floor ${median(p.floor.map((s) => s.clientCpuMs!)).toFixed(1)} ms`,
      }),
    );
  }
  for (const n of PROXY_COUNTS) {
    const p = pushes.get(n)!;
    const encodings = p.xds.reduce((a, s) => a + s.encodings, 0);
    const pairs = p.xds.reduce((a, s) => a + s.newPairs, 0);
    results.push(
      result({
        name: `xds encodings per distinct version, ${n} proxies`,
        value: encodings / pairs,
        unit: 'encodings',
        baseline: { name: 'distinct versions (1 encoding each)', value: 1 },
        target: 'exactly 1',
        note: `over ${PUSHES} pushes to ${n} proxies sharing one view: ${encodings} encodingCount() increments for ${pairs} distinct new (resource, version) pairs pushed; per push ${p.xds.map((s) => `${s.encodings}/${s.newPairs}`).join(', ')}`,
      }),
    );
  }
  const { xds, echo } = memory as Required<typeof memory>;
  const per = (m: { before: Memory; after: Memory }, k: keyof Memory) => (m.after[k] - m.before[k]) / KiB / MEMORY_PROXIES;
  const how =
    `server process only, a fresh one per side (clients in the fleet process); after global.gc(), 0 -> ${MEMORY_PROXIES} streams that each got one ${sizes.response} B message and answered it, ` +
    `after a ${MEMORY_WARMUP_PROXIES}-stream warm-up; ${PER_CHANNEL} streams per HTTP/2 connection, so connection cost is shared`;
  results.push(
    result({
      name: 'xds heap per connected proxy',
      value: per(xds, 'heapUsed'),
      unit: 'KiB',
      baseline: { name: 'bare grpc-js stream', value: per(echo, 'heapUsed') },
      target: '<= 64 KiB',
      note: `${how}; V8 heapUsed delta; external (Buffers) delta ${per(xds, 'external').toFixed(2)} KiB/proxy vs ${per(echo, 'external').toFixed(2)} KiB/stream`,
    }),
  );
  results.push(
    result({
      name: 'xds RSS per connected proxy',
      value: per(xds, 'rss'),
      unit: 'KiB',
      baseline: { name: 'bare grpc-js stream', value: per(echo, 'rss') },
      target: '<= 64 KiB',
      note: `${how}; RSS delta (RSS seldom shrinks, so it also holds the connect burst's peak)`,
    }),
  );
  return results;
}

/** "ms [fan-out ms, cpu ms]" for each sample. */
function fmtSamples(xs: readonly Sample[]): string {
  return (
    xs.map((x) => `${x.ms.toFixed(1)} [${x.fanOutMs.toFixed(1)}, ${x.cpuMs.toFixed(1)}]`).join(', ') +
    ' ms [synchronous fan-out, server CPU]'
  );
}
