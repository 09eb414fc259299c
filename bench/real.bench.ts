// The real-path benchmark (issue 11): meshpilot as users run it, started with
// startMeshpilot on a generated YAML mesh in its own process, against a fleet of
// Envoy-like proxies in another process (one TLS connection each, token, ADS SotW with
// CDS/EDS/LDS/RDS/SDS, every response ACKed). It touches nothing of meshpilot but the
// start function, what it returns (xdsPort, mintToken, ca.trustBundle, config.subscribe,
// stop) and encodingCount, so the same code measures the push path before and after a
// rewrite. Per mesh size it measures:
//   (a) cold start until every proxy has ACKed all five types, against bare grpc-js TLS
//       streams written the same bytes (the floor);
//   (b) a change every sidecar sees (a new Service file): per-proxy time to ACK it, from
//       the moment config.subscribe delivers the new model (meshpilot's own push debounce
//       included), against the floor broadcasting the same bytes;
//   (c) one service's endpoints changing: the bytes the fleet receives over SotW and delta;
//   (d) server RSS and heap per connected proxy after cold start and after the changes,
//       against the floor server's per-stream memory;
//   (e) encodingCount() increments per change;
//   (f) SVID issuance on the sidecar path (key generation, signing, PKCS#8 export) against
//       raw crypto.sign with the CA's key;
// and the same client fleet against go-control-plane (bench/peers/gcp) serving the
// resources meshpilot served. Every phase has a time cap; a phase that hits it reports
// "timed out" with the cap as a lower bound instead of hanging.
import { execFileSync } from 'node:child_process';
import { sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as asn1js from 'asn1js';
import { createEphemeralCa, generateKeyPair } from '../src/ca/index.js';
import { generateFreshKey } from '../src/secrets/index.js';
import { mustSpiffeId } from '../src/identity/index.js';
import { forkChild, type Child } from './lib/child.js';
import { ECHO_PATH } from './lib/echo-server.js';
import { gcpPeerMissing, startGcpPeer } from './lib/gcp-peer.js';
import { median, quantile, type Memory } from './lib/measure.js';
import { NAMESPACES, SERVICES, writeMeshConfig, type BenchWorkload, type Change, type MeshConfigDir } from './lib/mesh-config.js';
import type { Arrivals, ProxySpec, RealFleetCommand, RealFleetReply, Target } from './lib/real-fleet-protocol.js';
import type { RealServerCommand, RealServerReply } from './lib/real-server.js';
import { result, type BenchResult } from './lib/report.js';
import type { FloorCommand, FloorReply } from './lib/tls-floor-server.js';

/** Mesh sizes; BENCH_SIZES=100,1000 picks others (make bench-10k runs 10000 alone). */
const SIZES = (process.env.BENCH_SIZES ?? '100,1000,3000')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isInteger(n) && n >= 10);
/** Changes every sidecar sees, per size: ten up to 1,000 proxies, three above (each can take long on the old push path). */
const changesFor = (n: number) => Number(process.env.BENCH_CHANGES ?? (n <= 1_000 ? 10 : 3));
const s = (x: number) => x * 1_000;
/** Largest size whose delta fleet is measured (a second cold start: on the old push path that takes minutes above 1,000). */
const DELTA_MAX = Number(process.env.BENCH_DELTA_MAX ?? 1_000);
/** Cap on a cold start (meshpilot's, delta's, the floor's or the peer's). */
const COLD_CAP_MS = s(Number(process.env.BENCH_COLD_CAP_S ?? 240));
/** Cap on one change reaching every proxy. */
const CHANGE_CAP_MS = s(Number(process.env.BENCH_CHANGE_CAP_S ?? 120));
/** Cap on one size as a whole (meshpilot, floor and peer): past it every child of that size is killed and the size reported as failed. */
const SIZE_CAP_MS = s(Number(process.env.BENCH_SIZE_CAP_S ?? 1_200));
/** Cap on everything else (a model delivered, a floor broadcast). */
const STEP_CAP_MS = s(60);
/** After a change reached every proxy, how long stragglers (late responses) are still counted. */
const SETTLE_MS = 1_000;
/** The size of an Envoy ACK on these streams, roughly; the floor's clients answer with it. */
const ACK_BYTES = 120;
const KiB = 1024;
const CHANGE_TYPES = ['cds', 'eds', 'rds'] as const;

type Fleet = Child<RealFleetCommand, RealFleetReply>;
type Server = Child<RealServerCommand, RealServerReply>;

/** A phase's outcome: a value in its unit, or the cap it hit. */
interface Timed {
  readonly value: number;
  readonly timedOut: boolean;
}

/** Per-proxy latencies of one or more changes, ms. */
interface Latencies {
  readonly perProxy: readonly number[];
  /** Each change's time until its last proxy ACKed, ms. */
  readonly allAcked: readonly number[];
  readonly timedOut: boolean;
}

/** Everything measured at one mesh size. */
interface SizeRun {
  readonly n: number;
  failed?: string;
  cold?: Timed & { p50: number; responses: number };
  coldEncodings?: number;
  change?: Latencies & { fromWrite: readonly number[]; encodings: readonly number[] };
  memBefore?: Memory;
  memCold?: Memory;
  memChanges?: Memory;
  sotwBytes?: number;
  deltaCold?: Timed;
  deltaBytes?: number;
  floorCold?: Timed;
  /** How many responses proxy 0 got at cold start (the floor writes as many). */
  floorMessages?: number;
  floorChange?: Latencies;
  floorMem?: { before: Memory; after: Memory };
  gcp?: { skipped: string } | { cold: Timed & { responses: number }; push: Latencies; mem: { before: number; after: number } };
  logCounts?: RealServerReply['logCounts'];
  fleetErrors?: readonly string[];
}

const here = (file: string) => new URL(`./lib/${file}`, import.meta.url);
/** No command to a child may take longer than the longest cap plus a margin: a hung child is killed, not waited for. */
const SEND_CAP_MS = Math.max(COLD_CAP_MS, CHANGE_CAP_MS) + s(60);
/** The children of the size being measured: killed when the size's cap is reached. */
const live = new Set<{ kill(): Promise<void> }>();
/** Forks a child for the current size and registers it, so that the size cap can kill it. */
function sizeChild<C extends object, R>(module: URL, opts: Parameters<typeof forkChild>[1]): Child<C, R> {
  const c = forkChild<C, R>(module, opts);
  live.add(c);
  return c;
}
const fleetProcess = (): Fleet =>
  sizeChild(here('real-fleet-child.js'), { execArgv: ['--max-old-space-size=8192'], sendTimeoutMs: SEND_CAP_MS });

/** The arrivals' spread from `from` (epoch ms), in ms, leaving out proxies that never arrived. */
function spread(a: Arrivals, from: number): number[] {
  return a.atMs.flatMap((t) => (t === null ? [] : [t - from]));
}

/** Per-proxy latencies of a change from `from`; a proxy that never got it counts as the cap, so quantiles stay lower bounds. */
function latencies(a: Arrivals, from: number, capMs: number): number[] {
  return a.atMs.map((t) => (t === null ? capMs : t - from));
}

function coldOf(a: Arrivals, capMs: number): Timed & { p50: number } {
  const t = spread(a, a.openedAtMs);
  return a.timedOut || t.length === 0
    ? { value: capMs / 1000, timedOut: true, p50: t.length > 0 ? median(t) / 1000 : Number.NaN }
    : { value: Math.max(...t) / 1000, timedOut: false, p50: median(t) / 1000 };
}

const toSpec = (w: BenchWorkload, token?: string): ProxySpec => ({ nodeId: w.nodeId, ...(token ? { token } : {}) });

/** A self-signed serving certificate for `localhost` (the floor and the peer), made with the openssl CLI. */
function makeCertificate(dir: string): { certFile: string; keyFile: string; certPem: string; keyPem: string } {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1'].concat([
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ]),
    { stdio: 'ignore' },
  );
  return { certFile, keyFile, certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
}

/** One change every proxy sees, timed from the model's delivery (and from the file write) to each proxy's ACKs. */
async function changeAll(
  server: Server,
  fleet: Fleet,
  change: Change,
): Promise<{ perProxy: number[]; allAcked: number; fromWrite: number; timedOut: boolean; sizes: readonly number[] }> {
  await fleet.send({ cmd: 'expect', marker: change.marker, types: CHANGE_TYPES });
  const writtenAt = performance.timeOrigin + performance.now();
  change.write();
  const { atMs } = await server.send({
    cmd: 'await-model',
    kind: change.kind,
    namespace: change.namespace,
    name: change.name,
    timeoutMs: STEP_CAP_MS,
  });
  const r = await fleet.send({ cmd: 'await-marker', timeoutMs: CHANGE_CAP_MS });
  const a = r.arrivals!;
  const perProxy = latencies(a, atMs!, CHANGE_CAP_MS);
  const last = Math.max(...perProxy);
  return { perProxy, allAcked: last, fromWrite: last + (atMs! - writtenAt), timedOut: a.timedOut, sizes: r.proxy0Sizes!.change };
}

/** One endpoint change; resolves with the bytes the fleet received for it (until every proxy has it, plus a settle time). */
async function endpointBytes(server: Server, fleet: Fleet, change: Change): Promise<number | undefined> {
  await fleet.send({ cmd: 'expect', marker: change.marker, types: ['eds'] });
  change.write();
  await server.send({ cmd: 'await-model', kind: change.kind, namespace: change.namespace, name: change.name, timeoutMs: STEP_CAP_MS });
  const r = await fleet.send({ cmd: 'await-marker', timeoutMs: CHANGE_CAP_MS });
  if (r.arrivals!.timedOut) return undefined;
  await sleep(SETTLE_MS);
  return (await fleet.send({ cmd: 'stats' })).bytes;
}

/** meshpilot at one size: cold start, changes, memory, endpoint bytes over SotW and delta. Returns proxy 0's states for the peer. */
async function measureMeshpilot(
  run: SizeRun,
  cfg: MeshConfigDir,
): Promise<{ states: Record<string, readonly string[]>[]; markers: string[]; coldSizes: number[]; changeSizes: readonly number[] }> {
  const n = run.n;
  const states: Record<string, readonly string[]>[] = [];
  const markers: string[] = [''];
  let coldSizes: number[];
  let changeSizes: readonly number[] = [];
  const server: Server = sizeChild(here('real-server.js'), {
    execArgv: ['--expose-gc', '--max-old-space-size=8192'],
    sendTimeoutMs: SEND_CAP_MS,
  });
  const fleet = fleetProcess();
  // A server that did not finish its cold start is busy or stuck: asked anything more, each
  // question would wait out SEND_CAP_MS. It is killed instead, and nothing more is asked of it.
  let stuck = false;
  try {
    const { port, rootPem } = await server.send({ cmd: 'start', configDir: cfg.dir });
    const { tokens } = await server.send({ cmd: 'mint', accounts: cfg.workloads.map((w) => [w.namespace, w.serviceAccount] as const) });
    const target: Target = { address: `127.0.0.1:${port}`, serverName: 'localhost', rootPem: rootPem! };
    const proxies = cfg.workloads.map((w, i) => toSpec(w, tokens![i]));
    run.memBefore = (await server.send({ cmd: 'memory' })).memory!;

    // (a) cold start
    const e0 = (await server.send({ cmd: 'encodings' })).encodings!;
    await fleet.send({ cmd: 'open-ads', protocol: 'sotw', ...target, proxies });
    const ready = await fleet.send({ cmd: 'await-ready', timeoutMs: COLD_CAP_MS });
    run.cold = { ...coldOf(ready.arrivals!, COLD_CAP_MS), responses: ready.messages };
    coldSizes = [...ready.proxy0Sizes!.cold];
    if (ready.errors > 0) run.fleetErrors = ready.errorSamples;
    if (run.cold.timedOut) {
      stuck = true;
      run.failed = `cold start did not finish within ${COLD_CAP_MS / 1000} s; the server was killed and not queried further at this size`;
      return { states, markers, coldSizes, changeSizes };
    }
    run.coldEncodings = (await server.send({ cmd: 'encodings' })).encodings! - e0;
    run.memCold = (await server.send({ cmd: 'memory' })).memory!;
    states.push((await fleet.send({ cmd: 'dump' })).dump!);

    // (b) changes every sidecar sees, (e) encodings per change
    const perProxy: number[] = [];
    const allAcked: number[] = [];
    const fromWrite: number[] = [];
    const encodings: number[] = [];
    let timedOut = false;
    for (let k = 1; k <= changesFor(n) && !timedOut; k++) {
      const before = (await server.send({ cmd: 'encodings' })).encodings!;
      const change = cfg.addService(k);
      const c = await changeAll(server, fleet, change);
      await sleep(200); // pushes the change set off after the marked types (other listeners) are counted too
      encodings.push((await server.send({ cmd: 'encodings' })).encodings! - before);
      perProxy.push(...c.perProxy);
      allAcked.push(c.allAcked);
      fromWrite.push(c.fromWrite);
      timedOut = c.timedOut;
      if (k === 1) changeSizes = c.sizes;
      if (!timedOut) {
        states.push((await fleet.send({ cmd: 'dump' })).dump!);
        markers.push(change.marker);
      }
    }
    run.change = { perProxy, allAcked, fromWrite, encodings, timedOut };
    run.memChanges = (await server.send({ cmd: 'memory' })).memory!;

    // (c) one service's endpoints: SotW, then the same change over delta with a fresh fleet
    run.sotwBytes = await endpointBytes(server, fleet, cfg.addEndpoint(1));
    await fleet.send({ cmd: 'close' });
    if (n > DELTA_MAX) return { states, markers, coldSizes, changeSizes };
    await sleep(500);
    await fleet.send({ cmd: 'open-ads', protocol: 'delta', ...target, proxies });
    const dready = await fleet.send({ cmd: 'await-ready', timeoutMs: COLD_CAP_MS });
    run.deltaCold = coldOf(dready.arrivals!, COLD_CAP_MS);
    if (!run.deltaCold.timedOut) run.deltaBytes = await endpointBytes(server, fleet, cfg.addEndpoint(2));
    await fleet.send({ cmd: 'close' });
    return { states, markers, coldSizes, changeSizes };
  } finally {
    if (stuck) {
      await fleet.kill();
      await server.kill();
    } else {
      run.logCounts = (await server.send({ cmd: 'log-counts' }).catch(() => ({ logCounts: undefined }))).logCounts;
      await fleet.stop();
      await server.send({ cmd: 'stop' }).catch(() => undefined);
      await server.stop();
    }
  }
}

/** The floor: the same number of TLS streams written proxy 0's cold-start bytes, then its first change's bytes. */
async function measureFloor(
  run: SizeRun,
  cert: { certPem: string; keyPem: string },
  coldSizes: readonly number[],
  changeSizes: readonly number[],
): Promise<void> {
  const floor: Child<FloorCommand, FloorReply> = sizeChild(here('tls-floor-server.js'), {
    execArgv: ['--expose-gc'],
    sendTimeoutMs: SEND_CAP_MS,
  });
  const fleet = fleetProcess();
  try {
    const { address } = await floor.send({ cmd: 'start', certPem: cert.certPem, keyPem: cert.keyPem, greetingSizes: coldSizes });
    const before = (await floor.send({ cmd: 'memory' })).memory!;
    run.floorMessages = coldSizes.length;
    const target: Target = { address: address!, serverName: 'localhost', rootPem: cert.certPem };
    await fleet.send({ cmd: 'open-echo', ...target, path: ECHO_PATH, count: run.n, replyBytes: ACK_BYTES, total: coldSizes.length });
    run.floorCold = coldOf((await fleet.send({ cmd: 'await-echo', timeoutMs: COLD_CAP_MS })).arrivals!, COLD_CAP_MS);
    const after = (await floor.send({ cmd: 'memory' })).memory!;
    run.floorMem = { before, after };
    if (run.floorCold.timedOut || changeSizes.length === 0) return;
    await fleet.send({ cmd: 'echo-total', total: coldSizes.length + changeSizes.length });
    const { atMs } = await floor.send({ cmd: 'broadcast', sizes: changeSizes, timeoutMs: CHANGE_CAP_MS });
    const a = (await fleet.send({ cmd: 'await-echo', timeoutMs: CHANGE_CAP_MS })).arrivals!;
    const perProxy = latencies(a, atMs!, CHANGE_CAP_MS);
    run.floorChange = { perProxy, allAcked: [Math.max(...perProxy)], timedOut: a.timedOut };
    await fleet.send({ cmd: 'close' });
  } finally {
    await fleet.stop();
    await floor.send({ cmd: 'stop' }).catch(() => undefined);
    await floor.stop();
  }
}

/** go-control-plane serving proxy 0's recorded states to the same fleet: cold start, the same changes, memory. */
async function measureGcp(
  run: SizeRun,
  cfg: MeshConfigDir,
  cert: { certFile: string; keyFile: string; certPem: string },
  dir: string,
  states: readonly Record<string, readonly string[]>[],
  markers: readonly string[],
): Promise<void> {
  const missing = gcpPeerMissing();
  if (missing) return void (run.gcp = { skipped: missing });
  if (states.length < 2)
    return void (run.gcp = { skipped: 'meshpilot did not get through a change at this size, so there is nothing to replay' });
  const statesFile = join(dir, `gcp-states-${run.n}.json`);
  writeFileSync(statesFile, JSON.stringify({ states }));
  const peer = await startGcpPeer({ statesFile, certFile: cert.certFile, keyFile: cert.keyFile });
  live.add({ kill: () => peer.stop() });
  const fleet = fleetProcess();
  try {
    const before = await peer.memory();
    const target: Target = { address: `127.0.0.1:${peer.port}`, serverName: 'localhost', rootPem: cert.certPem };
    await fleet.send({ cmd: 'open-ads', protocol: 'sotw', ...target, proxies: cfg.workloads.map((w) => toSpec(w)) });
    const ready = await fleet.send({ cmd: 'await-ready', timeoutMs: COLD_CAP_MS });
    const cold = { ...coldOf(ready.arrivals!, COLD_CAP_MS), responses: ready.messages };
    const after = await peer.memory();
    const perProxy: number[] = [];
    const allAcked: number[] = [];
    let timedOut = cold.timedOut;
    for (let k = 1; k < states.length && !timedOut; k++) {
      await fleet.send({ cmd: 'expect', marker: markers[k]!, types: CHANGE_TYPES });
      const at = await peer.set(k);
      const a = (await fleet.send({ cmd: 'await-marker', timeoutMs: CHANGE_CAP_MS })).arrivals!;
      const t = latencies(a, at, CHANGE_CAP_MS);
      perProxy.push(...t);
      timedOut = a.timedOut;
      allAcked.push(Math.max(...t));
    }
    run.gcp = { cold, push: { perProxy, allAcked, timedOut }, mem: { before: before.rss, after: after.rss } };
    await fleet.send({ cmd: 'close' });
  } finally {
    await fleet.stop();
    await peer.stop();
    rmSync(statesFile, { force: true });
  }
}

async function measureSize(n: number, dir: string, cert: ReturnType<typeof makeCertificate>): Promise<SizeRun> {
  const run: SizeRun = { n };
  const cfg = writeMeshConfig(n);
  const t0 = performance.now();
  let capped = false;
  // The size's cap: every child of this size is killed, so every pending command rejects and the
  // measurement below ends at once; the size is reported as failed with what it measured so far.
  const cap = setTimeout(() => {
    capped = true;
    console.error(`bench real ${n}: size cap of ${SIZE_CAP_MS / 1000} s reached; killing its processes`);
    for (const c of live) void c.kill();
  }, SIZE_CAP_MS);
  try {
    const { states, markers, coldSizes, changeSizes } = await measureMeshpilot(run, cfg);
    console.error(`bench real ${n}: meshpilot done at ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    if (coldSizes.length > 0 && !capped) await measureFloor(run, cert, coldSizes, changeSizes);
    console.error(`bench real ${n}: floor done at ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    if (!capped) await measureGcp(run, cfg, cert, dir, states, markers);
    console.error(`bench real ${n}: go-control-plane done at ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  } catch (e) {
    run.failed ??= (e as Error).message.split('\n')[0]!;
    console.error(`bench real ${n}: failed: ${(e as Error).stack ?? String(e)}`);
  } finally {
    clearTimeout(cap);
    if (capped) run.failed = `size cap of ${SIZE_CAP_MS / 1000} s reached (BENCH_SIZE_CAP_S)${run.failed ? `; ${run.failed}` : ''}`;
    await Promise.all([...live].map((c) => c.kill()));
    live.clear();
    cfg.remove();
  }
  return run;
}

/**
 * (f) SVID issuance on the sidecar path as src/secrets/svid-store.ts runs it: a P-256 key made
 * on libuv's thread pool (generateFreshKey: JWK-encoded to SPKI DER and PKCS#8 PEM), then
 * ca.signSvid with those SPKI bytes, up to 64 in flight; against raw crypto.sign with the same
 * CA key over a blob the size of an SVID's to-be-signed bytes. Rounds alternate, best of each.
 */
async function svidIssuance(): Promise<BenchResult> {
  const caKeys = generateKeyPair('ec-p256');
  const ca = createEphemeralCa({ generateKey: () => caKeys });
  const id = mustSpiffeId('spiffe://cluster.local/ns/bench/sa/bench');
  const sample = ca.signSvid({ spiffeId: id, publicKey: generateKeyPair('ec-p256').publicKey });
  if (!sample.ok) throw new Error(sample.error.message);
  const certAsn = asn1js.fromBER(sample.value.certificateDer).result as asn1js.Sequence;
  const blob = Buffer.alloc(certAsn.valueBlock.value[0]!.valueBeforeDecodeView.byteLength, 0x5a);
  const COUNT = 2_000;
  const rawRate = () => {
    const t0 = performance.now();
    for (let i = 0; i < COUNT; i++) sign('sha256', blob, caKeys.privateKey);
    return COUNT / ((performance.now() - t0) / 1000);
  };
  const issueRate = async () => {
    const t0 = performance.now();
    let started = 0;
    const worker = async () => {
      while (started < COUNT) {
        started++;
        const key = await generateFreshKey();
        const r = ca.signSvid({ spiffeId: id, publicKey: key.publicKey, spkiDer: key.spkiDer });
        if (!r.ok) throw new Error(r.error.message);
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker));
    return COUNT / ((performance.now() - t0) / 1000);
  };
  let floor = 0;
  let sidecar = 0;
  for (let round = 0; round < 3; round++) {
    floor = Math.max(floor, rawRate());
    sidecar = Math.max(sidecar, await issueRate());
  }
  ca.close();
  return result({
    name: 'real.svid_issue_ratio',
    value: sidecar,
    unit: 'svid/s',
    baseline: { name: `crypto.sign ECDSA P-256 over ${blob.length} B, same cached CA key`, value: floor },
    note: 'the sidecar path as src/secrets/svid-store.ts runs it: generateFreshKey (key made on the thread pool, JWK-encoded), ca.signSvid with the SPKI bytes, 64 in flight; best of 3 alternating rounds',
  });
}

const kib = (bytes: number, n: number) => bytes / KiB / n;

/** Turns one size's measurements into result rows. */
function rows(r: SizeRun): BenchResult[] {
  const n = r.n;
  const out: BenchResult[] = [];
  const skip = (name: string, unit: string, why: string) =>
    out.push(result({ name, value: Number.NaN, unit, baseline: { name: 'none', value: Number.NaN }, skipped: why }));
  const why = r.failed ? `failed: ${r.failed}` : undefined;
  const setup = `${n} proxies, ${SERVICES} services, each proxy its own workload, service account, token and TLS connection (ADS, SotW unless said)`;
  const cap = (t: Timed) => (t.timedOut ? { timedOut: true } : {});

  if (r.cold)
    out.push(
      result({
        name: `real.coldstart.${n}`,
        value: r.cold.value,
        unit: 's',
        baseline: { name: `bare grpc-js TLS streams written the same bytes`, value: r.floorCold?.value ?? Number.NaN },
        ...cap(r.cold),
        note: `${setup}; from opening every stream at once until the last proxy ACKed CDS, EDS, LDS, RDS and SDS; median proxy ${r.cold.p50.toFixed(2)} s; ${r.cold.responses} responses; floor: the same number of TLS connections, each written messages of proxy 0's ${r.floorMessages ?? '?'} cold-start response sizes on hello and answering each with ${ACK_BYTES} B${r.floorCold?.timedOut ? ' (floor timed out)' : ''}${r.fleetErrors ? `; stream errors: ${r.fleetErrors.join(' | ')}` : ''}`,
      }),
    );
  else skip(`real.coldstart.${n}`, 's', why ?? 'not measured');

  const ch = r.change;
  const fc = r.floorChange;
  if (ch && ch.perProxy.length > 0) {
    const floorQ = (q: number) => (fc && fc.perProxy.length > 0 ? quantile(fc.perProxy, q) : Number.NaN);
    const how = `${ch.allAcked.length} changes (a new file with a Service, its one WorkloadEntry and ServiceAccount: every proxy gets a new cluster, endpoints and route), pooled per-proxy times from config.subscribe delivering the new model to the proxy's ACK of the last of CDS, EDS and RDS holding the new service; this includes meshpilot's own push debounce; the file reload debounce (~100 ms) comes before and is not counted (from the file write, each change's last ACK: ${ch.fromWrite.map((x) => x.toFixed(0)).join(', ')} ms); floor: proxy 0's bytes of the first change broadcast to as many bare TLS streams`;
    for (const [q, label] of [
      [0.5, 'p50'],
      [0.99, 'p99'],
      [1, 'max'],
    ] as const) {
      const value = quantile(ch.perProxy, q);
      out.push(
        result({
          name: `real.change_all.${n}.${label}`,
          value,
          unit: 'ms',
          baseline: { name: 'bare grpc-js TLS broadcast of the same bytes', value: floorQ(q) },
          ...(value >= CHANGE_CAP_MS ? { timedOut: true } : {}),
          note: `${how}; each change's last ACK: ${ch.allAcked.map((x) => x.toFixed(0)).join(', ')} ms${ch.timedOut ? `; the last change timed out after ${CHANGE_CAP_MS / 1000} s (proxies without it count as the cap)` : ''}`,
        }),
      );
    }
    const ideal = 7;
    out.push(
      result({
        name: `real.encodings_per_change.${n}`,
        value: median(ch.encodings),
        unit: 'encodings',
        baseline: { name: 'resources the change creates or alters', value: ideal },
        note: `median encodingCount() increments per change (each: ${ch.encodings.join(', ')}); cold start: ${r.coldEncodings}; baseline: what the change creates or alters, each encoded once: 1 cluster + 1 endpoint set + 5 route configs (meshpilot builds one per client namespace)`,
      }),
    );
  } else {
    for (const l of ['p50', 'p99', 'max']) skip(`real.change_all.${n}.${l}`, 'ms', why ?? 'cold start did not finish');
    skip(`real.encodings_per_change.${n}`, 'encodings', why ?? 'cold start did not finish');
  }

  const fm = r.floorMem;
  const floorPer = (k: keyof Memory) => (fm ? kib(fm.after[k] - fm.before[k], n) : Number.NaN);
  const memNote = `meshpilot alone in its own process, after global.gc(); (after - before connecting) / ${n}; the clients live in another process; baseline: the floor server in a fresh process, per bare TLS stream that got the same cold-start bytes`;
  if (r.memBefore && r.memCold) {
    const mb = r.memBefore;
    for (const [label, m] of [
      ['', r.memCold],
      ['.after_changes', r.memChanges],
    ] as const) {
      if (!m) continue;
      out.push(
        result({
          name: `real.rss_per_proxy${label}.${n}`,
          value: kib(m.rss - mb.rss, n),
          unit: 'KiB',
          baseline: { name: 'bare grpc-js TLS stream', value: floorPer('rss') },
          ...(r.cold?.timedOut ? { timedOut: true } : {}),
          note: `${label ? `after ${r.change?.allAcked.length} changes; ` : 'after cold start; '}${memNote}; RSS seldom shrinks, so it holds the connect burst's peak`,
        }),
      );
      out.push(
        result({
          name: `real.heap_per_proxy${label}.${n}`,
          value: kib(m.heapUsed - mb.heapUsed, n),
          unit: 'KiB',
          baseline: { name: 'bare grpc-js TLS stream', value: floorPer('heapUsed') },
          note: `${label ? 'after the changes; ' : 'after cold start; '}${memNote}; V8 heapUsed; external (Buffers) ${kib(m.external - mb.external, n).toFixed(1)} KiB/proxy vs ${floorPer('external').toFixed(1)}`,
        }),
      );
    }
  } else skip(`real.rss_per_proxy.${n}`, 'KiB', why ?? 'not measured');

  if (r.sotwBytes !== undefined && r.deltaBytes !== undefined)
    out.push(
      result({
        name: `real.delta_bytes_ratio.${n}`,
        value: r.deltaBytes,
        unit: 'B',
        baseline: { name: 'SotW bytes for the same change', value: r.sotwBytes },
        note: `one WorkloadEntry added to one service (same service account, so only its endpoints change): gRPC message bytes the whole fleet received until every proxy ACKed the new endpoint, plus ${SETTLE_MS} ms; ratio = delta ÷ SotW; delta fleet cold start ${r.deltaCold ? `${r.deltaCold.timedOut ? 'timed out after ' : ''}${r.deltaCold.value.toFixed(2)} s` : 'n/a'}`,
      }),
    );
  else
    skip(
      `real.delta_bytes_ratio.${n}`,
      'B',
      why ??
        (n > DELTA_MAX
          ? `delta measured up to ${DELTA_MAX} proxies to bound the run (BENCH_DELTA_MAX raises it); SotW bytes for the change: ${r.sotwBytes ?? 'n/a'}`
          : r.deltaCold?.timedOut
            ? 'delta cold start timed out'
            : 'not measured'),
    );

  const g = r.gcp;
  if (g && 'cold' in g && ch && g.push.allAcked.length > 0) {
    out.push(
      result({
        name: `peer.gcp.push.${n}`,
        value: median(ch.allAcked),
        unit: 'ms',
        baseline: { name: 'go-control-plane v0.14.0 SnapshotCache, same fleet and states', value: median(g.push.allAcked) },
        note: `median over changes of the time until every proxy ACKed the change (CDS, EDS, RDS); meshpilot from config.subscribe (its push debounce included), go-control-plane from SetSnapshot of proxy 0's recorded state (one snapshot for every node: it does not generate, it serves); gcp each: ${g.push.allAcked.map((x) => x.toFixed(0)).join(', ')} ms; gcp p99 per proxy ${quantile(g.push.perProxy, 0.99).toFixed(0)} ms`,
      }),
    );
    out.push(
      result({
        name: `peer.gcp.coldstart_throughput.${n}`,
        value: r.cold ? r.cold.responses / r.cold.value : Number.NaN,
        unit: 'responses/s',
        baseline: { name: 'go-control-plane', value: g.cold.responses / g.cold.value },
        note: `responses the fleet received during cold start ÷ cold start time; gcp cold start ${g.cold.timedOut ? 'timed out after ' : ''}${g.cold.value.toFixed(2)} s (${g.cold.responses} responses)`,
      }),
    );
    out.push(
      result({
        name: `peer.gcp.rss_per_stream.${n}`,
        value: r.memBefore && r.memCold ? kib(r.memCold.rss - r.memBefore.rss, n) : Number.NaN,
        unit: 'KiB',
        baseline: { name: 'go-control-plane (VmRSS after runtime.GC)', value: kib(g.mem.after - g.mem.before, n) },
        note: 'server RSS per connected proxy after cold start, meshpilot vs go-control-plane',
      }),
    );
  } else skip(`peer.gcp.push.${n}`, 'ms', g && 'skipped' in g ? g.skipped : (why ?? 'meshpilot did not get through a change at this size'));

  if (r.logCounts && Object.keys(r.logCounts).length > 0)
    console.error(
      `bench real ${n}: meshpilot logged ${Object.entries(r.logCounts)
        .map(([k, v]) => `${v.count}× ${k} (first: ${v.first})`)
        .join('; ')}`,
    );
  return out;
}

/** Sizes of the Sidecar variant (kept small in the default run); BENCH_SIDECAR_SIZES=1000 picks others, '' none. */
const SIDECAR_SIZES = (process.env.BENCH_SIDECAR_SIZES ?? '200')
  .split(',')
  .map((x) => Number(x.trim()))
  .filter((x) => Number.isInteger(x) && x >= 10);

/** What one cold start of the fleet costs: bytes every proxy received, server memory per proxy. */
interface ColdCost {
  readonly bytesPerProxy: number;
  readonly rssPerProxy: number;
  readonly heapPerProxy: number;
  readonly timedOut: boolean;
}

// A mesh-wide default Sidecar in the root namespace: every proxy sees only its own namespace's
// services (Istio's common `egress: [{hosts: ["./*", "istio-system/*"]}]`).
const NAMESPACE_SCOPED_SIDECAR = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: default, namespace: istio-system }
spec:
  egress:
    - hosts: ["./*", "istio-system/*"]
`;

/** One cold start at size n, with or without the namespace-scoped Sidecar. */
async function coldCost(n: number, scoped: boolean): Promise<ColdCost> {
  const cfg = writeMeshConfig(n);
  if (scoped) writeFileSync(join(cfg.dir, 'sidecar.yaml'), NAMESPACE_SCOPED_SIDECAR);
  const server: Server = forkChild(here('real-server.js'), {
    execArgv: ['--expose-gc', '--max-old-space-size=8192'],
    sendTimeoutMs: SEND_CAP_MS,
  });
  const fleet = fleetProcess();
  try {
    const { port, rootPem } = await server.send({ cmd: 'start', configDir: cfg.dir });
    const { tokens } = await server.send({ cmd: 'mint', accounts: cfg.workloads.map((w) => [w.namespace, w.serviceAccount] as const) });
    const target: Target = { address: `127.0.0.1:${port}`, serverName: 'localhost', rootPem: rootPem! };
    const before = (await server.send({ cmd: 'memory' })).memory!;
    await fleet.send({ cmd: 'open-ads', protocol: 'sotw', ...target, proxies: cfg.workloads.map((w, i) => toSpec(w, tokens![i])) });
    const ready = await fleet.send({ cmd: 'await-ready', timeoutMs: COLD_CAP_MS });
    const after = (await server.send({ cmd: 'memory' })).memory!;
    await fleet.send({ cmd: 'close' });
    return {
      bytesPerProxy: ready.bytes / KiB / n,
      rssPerProxy: kib(after.rss - before.rss, n),
      heapPerProxy: kib(after.heapUsed - before.heapUsed, n),
      timedOut: coldOf(ready.arrivals!, COLD_CAP_MS).timedOut,
    };
  } finally {
    await fleet.stop();
    await server.send({ cmd: 'stop' }).catch(() => undefined);
    await server.stop();
    rmSync(cfg.dir, { recursive: true, force: true });
  }
}

/** The Sidecar variant: cold-start bytes and memory per proxy with a namespace-scoped Sidecar, against none. */
async function sidecarRows(n: number): Promise<BenchResult[]> {
  const none = await coldCost(n, false);
  console.error(`bench real sidecar ${n}: no Sidecar done`);
  const scoped = await coldCost(n, true);
  console.error(`bench real sidecar ${n}: scoped done`);
  const note = `${n} proxies in ${NAMESPACES} namespaces over ${SERVICES} services; a root-namespace Sidecar with egress hosts ./* and istio-system/* (each proxy sees its namespace's ${SERVICES / NAMESPACES} services) vs no Sidecar; one SotW cold start each, all five types ACKed`;
  return [
    result({
      name: `real.sidecar_scoped.cold_bytes_per_proxy.${n}`,
      value: scoped.bytesPerProxy,
      unit: 'KiB',
      baseline: { name: 'no Sidecar', value: none.bytesPerProxy },
      ...(scoped.timedOut || none.timedOut ? { timedOut: true } : {}),
      note: `gRPC message bytes the fleet received during cold start ÷ proxies; ${note}`,
    }),
    result({
      name: `real.sidecar_scoped.rss_per_proxy.${n}`,
      value: scoped.rssPerProxy,
      unit: 'KiB',
      baseline: { name: 'no Sidecar', value: none.rssPerProxy },
      note: `server RSS after cold start minus before connecting, ÷ proxies, after global.gc(); ${note}`,
    }),
    result({
      name: `real.sidecar_scoped.heap_per_proxy.${n}`,
      value: scoped.heapPerProxy,
      unit: 'KiB',
      baseline: { name: 'no Sidecar', value: none.heapPerProxy },
      note: `server V8 heapUsed after cold start minus before connecting, ÷ proxies, after global.gc(); ${note}`,
    }),
  ];
}

/** Runs the real-path benchmark at every size; resolves once every child process has exited. */
export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'meshpilot-bench-real-'));
  const out: BenchResult[] = [];
  try {
    const cert = makeCertificate(dir);
    for (const n of SIZES) out.push(...rows(await measureSize(n, dir, cert)));
    for (const n of SIDECAR_SIZES) out.push(...(await sidecarRows(n)));
    out.push(await svidIssuance());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
