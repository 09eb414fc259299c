// A fleet of simulated Envoy sidecars for the real-path benchmark, in a child process so
// the server's process holds no client state. Each proxy behaves as Envoy does on ADS:
// its own TLS connection, its token as `authorization: Bearer` metadata, wildcard CDS and
// LDS, then EDS for the EDS clusters CDS names and RDS for the routes the listeners name,
// SDS for `default` and `ROOTCA`; every response is ACKed (version and nonce, same names),
// never NACKed. The delta variant subscribes the same way over DeltaAggregatedResources.
// The floor's bare echo streams live here too. Started and steered by real.bench.ts.
import * as grpc from '@grpc/grpc-js';
import {
  Cluster,
  Cluster_DiscoveryType,
  DeltaDiscoveryRequest,
  DeltaDiscoveryResponse,
  DiscoveryRequest,
  DiscoveryResponse,
  HttpConnectionManager,
  Listener,
  TypeUrl,
  typeShortName,
} from '../../src/proto/index.js';
import { serveParent } from './child.js';
import { epochMs } from './measure.js';
import type { Arrivals, OpenAds, OpenEcho, RealFleetCommand, RealFleetReply, Target } from './real-fleet-protocol.js';
import { setTimeout as sleep } from 'node:timers/promises';

const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService';
const SOTW_PATH = `${ADS}/StreamAggregatedResources`;
const DELTA_PATH = `${ADS}/DeltaAggregatedResources`;
const SDS_NAMES = ['default', 'ROOTCA'];
const ALL_TYPES: readonly TypeUrl[] = [
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
  TypeUrl.Secret,
];
const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const shortToType = new Map<string, TypeUrl>(ALL_TYPES.map((t) => [typeShortName[t], t]));

type Call = grpc.ClientDuplexStream<Buffer, Buffer>;

interface TypeState {
  /** Names subscribed (explicit subscriptions only; CDS and LDS are wildcard). */
  names: readonly string[];
  version: string;
  nonce: string;
  acked: boolean;
  /** Current resources by name (delta: accumulated; SotW: the last response's, proxy 0 only). */
  resources: Map<string, Uint8Array>;
}

interface Proxy {
  readonly call: Call;
  readonly types: Map<TypeUrl, TypeState>;
  readyAt: number | null;
  marks: Set<TypeUrl>;
  doneAt: number | null;
}

interface EchoStream {
  received: number;
  /** When the stream's message count reached the awaited total. */
  reachedAt: number | null;
}

const clients: grpc.Client[] = [];
let proxies: Proxy[] = [];
let echoes: EchoStream[] = [];
let openedAtMs = 0;
let messages = 0;
let bytes = 0;
let errors = 0;
const errorSamples: string[] = [];
let sizes = { cold: [] as number[], change: [] as number[] };
let expectation: { marker: string; types: ReadonlySet<TypeUrl> } | undefined;
let echoTotal = Infinity;

// What a CDS or LDS response leads to (EDS or route names) is the same for every proxy that
// gets the same response; decoding it once per distinct response keeps the fleet's CPU for
// the protocol, so the server gets its core. Keyed by type, version and size.
const followUps = new Map<string, readonly string[]>();

function edsNames(clusters: Iterable<Uint8Array>): string[] {
  const out: string[] = [];
  for (const bytes of clusters) {
    const c = Cluster.decode(bytes);
    if (c.type === Cluster_DiscoveryType.EDS) out.push(c.edsClusterConfig?.serviceName || c.name);
  }
  return out.sort();
}

function routeNames(listeners: Iterable<Uint8Array>): string[] {
  const out = new Set<string>();
  for (const bytes of listeners) {
    const l = Listener.decode(bytes);
    for (const chain of [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])])
      for (const f of chain.filters)
        if (f.typedConfig?.typeUrl === HCM_TYPE) {
          const name = HttpConnectionManager.decode(f.typedConfig.value).rds?.routeConfigName;
          if (name) out.add(name);
        }
  }
  return [...out].sort();
}

function followUp(t: TypeUrl, key: string, resources: () => Iterable<Uint8Array>): readonly string[] | undefined {
  if (t !== TypeUrl.Cluster && t !== TypeUrl.Listener) return undefined;
  let names = followUps.get(key);
  if (!names) {
    names = t === TypeUrl.Cluster ? edsNames(resources()) : routeNames(resources());
    if (followUps.size > 1_000) followUps.clear();
    followUps.set(key, names);
  }
  return names;
}

const sameNames = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((n, i) => n === b[i]);

function channel(t: Target, Ctor: typeof grpc.Client = grpc.Client): grpc.Client {
  const c = new Ctor(t.address, grpc.credentials.createSsl(Buffer.from(t.rootPem)), {
    // One connection per proxy, as each Envoy has its own: grpc-js would otherwise share one per target.
    'grpc.use_local_subchannel_pool': 1,
    'grpc.ssl_target_name_override': t.serverName,
    'grpc.default_authority': t.serverName,
    'grpc.max_receive_message_length': -1,
  });
  clients.push(c);
  return c;
}

function track(call: Call): void {
  call.on('error', (e: Error) => {
    errors++;
    if (errorSamples.length < 5) errorSamples.push(e.message);
  });
}

const enc = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const state = (p: Proxy, t: TypeUrl): TypeState => {
  let st = p.types.get(t);
  if (!st) p.types.set(t, (st = { names: [], version: '', nonce: '', acked: false, resources: new Map() }));
  return st;
};

/** After an ACK: the proxy may now be ready, or done with the expected change. */
function afterAck(p: Proxy, t: TypeUrl, buf: Buffer): void {
  const now = epochMs();
  if (p.readyAt === null && ALL_TYPES.every((x) => p.types.get(x)?.acked)) p.readyAt = now;
  if (expectation && p.doneAt === null && expectation.types.has(t) && buf.includes(expectation.marker)) {
    p.marks.add(t);
    if (p.marks.size === expectation.types.size) p.doneAt = now;
  }
}

function count(p: Proxy, buf: Buffer, index: number): void {
  messages++;
  bytes += buf.length;
  if (index !== 0) return;
  if (p.readyAt === null) sizes.cold.push(buf.length);
  else if (expectation && p.doneAt === null) sizes.change.push(buf.length);
}

function openSotw(c: OpenAds): void {
  c.proxies.forEach((spec, index) => {
    const md = new grpc.Metadata();
    if (spec.token) md.set('authorization', `Bearer ${spec.token}`);
    const call = channel(c).makeBidiStreamRequest(
      SOTW_PATH,
      (b: Buffer) => b,
      (b: Buffer) => b,
      md,
    ) as Call;
    track(call);
    const p: Proxy = { call, types: new Map(), readyAt: null, marks: new Set(), doneAt: null };
    proxies.push(p);
    const send = (t: TypeUrl, st: TypeState, first = false) =>
      call.write(
        enc(
          DiscoveryRequest.encode(
            DiscoveryRequest.fromPartial({
              // The node goes on the first request only (set_node_on_first_message_only, as Istio configures Envoy).
              ...(first ? { node: { id: spec.nodeId, cluster: 'bench' } } : {}),
              typeUrl: t,
              versionInfo: st.version,
              responseNonce: st.nonce,
              resourceNames: [...st.names],
            }),
          ).finish(),
        ),
      );
    call.on('data', (buf: Buffer) => {
      count(p, buf, index);
      const r = DiscoveryResponse.decode(buf);
      const t = r.typeUrl as TypeUrl;
      const st = state(p, t);
      st.version = r.versionInfo;
      st.nonce = r.nonce;
      if (index === 0) st.resources = new Map(r.resources.map((a, i) => [`${i}`, a.value]));
      // ACK: version and nonce of the response, the same names.
      send(t, st);
      st.acked = true;
      const next = followUp(t, `${t}|${r.versionInfo}|${buf.length}`, () => r.resources.map((a) => a.value));
      if (next) {
        const dep = t === TypeUrl.Cluster ? TypeUrl.ClusterLoadAssignment : TypeUrl.RouteConfiguration;
        const ds = state(p, dep);
        if (!sameNames(ds.names, next)) {
          // A subscription change carries the last version and nonce of that type, as Envoy's do.
          ds.names = next;
          send(dep, ds, false);
        }
      }
      afterAck(p, t, buf);
    });
    // Envoy's first requests: wildcard CDS and LDS, then SDS for the two secrets its config names.
    send(TypeUrl.Cluster, state(p, TypeUrl.Cluster), true);
    send(TypeUrl.Listener, state(p, TypeUrl.Listener));
    const sds = state(p, TypeUrl.Secret);
    sds.names = SDS_NAMES;
    send(TypeUrl.Secret, sds);
  });
}

function openDelta(c: OpenAds): void {
  c.proxies.forEach((spec, index) => {
    const md = new grpc.Metadata();
    if (spec.token) md.set('authorization', `Bearer ${spec.token}`);
    const call = channel(c).makeBidiStreamRequest(
      DELTA_PATH,
      (b: Buffer) => b,
      (b: Buffer) => b,
      md,
    ) as Call;
    track(call);
    const p: Proxy = { call, types: new Map(), readyAt: null, marks: new Set(), doneAt: null };
    proxies.push(p);
    const send = (req: {
      node?: { id: string; cluster: string };
      typeUrl: string;
      responseNonce?: string;
      resourceNamesSubscribe?: string[];
      resourceNamesUnsubscribe?: string[];
    }) => call.write(enc(DeltaDiscoveryRequest.encode(DeltaDiscoveryRequest.fromPartial(req)).finish()));
    call.on('data', (buf: Buffer) => {
      count(p, buf, index);
      const r = DeltaDiscoveryResponse.decode(buf);
      const t = r.typeUrl as TypeUrl;
      const st = state(p, t);
      for (const res of r.resources) if (res.resource) st.resources.set(res.name, res.resource.value);
      for (const n of r.removedResources) st.resources.delete(n);
      st.version = r.systemVersionInfo;
      send({ typeUrl: t, responseNonce: r.nonce });
      st.acked = true;
      const next = followUp(t, `${t}|${r.systemVersionInfo}|${[...st.resources.keys()].join(',')}`, () => st.resources.values());
      if (next) {
        const dep = t === TypeUrl.Cluster ? TypeUrl.ClusterLoadAssignment : TypeUrl.RouteConfiguration;
        const ds = state(p, dep);
        if (!sameNames(ds.names, next)) {
          const had = new Set(ds.names);
          const now = new Set(next);
          send({
            typeUrl: dep,
            resourceNamesSubscribe: next.filter((n) => !had.has(n)),
            resourceNamesUnsubscribe: ds.names.filter((n) => !now.has(n)),
          });
          ds.names = next;
        }
      }
      afterAck(p, t, buf);
    });
    send({ node: { id: spec.nodeId, cluster: 'bench' }, typeUrl: TypeUrl.Cluster });
    send({ typeUrl: TypeUrl.Listener });
    send({ typeUrl: TypeUrl.Secret, resourceNamesSubscribe: SDS_NAMES });
    state(p, TypeUrl.Secret).names = SDS_NAMES;
  });
}

function openEcho(c: OpenEcho): void {
  const reply = Buffer.alloc(c.replyBytes, 7);
  for (let i = 0; i < c.count; i++) {
    const call = channel(c).makeBidiStreamRequest(
      c.path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      new grpc.Metadata(),
    ) as Call;
    track(call);
    const e: EchoStream = { received: 0, reachedAt: null };
    echoes.push(e);
    call.on('data', (b: Buffer) => {
      messages++;
      bytes += b.length;
      call.write(reply);
      if (++e.received >= echoTotal && e.reachedAt === null) e.reachedAt = epochMs();
    });
    call.write(Buffer.from('hello'));
  }
}

/** Polls until every entry has a time or the deadline passes; the times themselves are taken when the events happen. */
async function arrivals(times: () => (number | null)[], timeoutMs: number): Promise<Arrivals> {
  const deadline = Date.now() + timeoutMs;
  let atMs = times();
  while (atMs.some((t) => t === null) && Date.now() < deadline && errors === 0) {
    await sleep(20);
    atMs = times();
  }
  return { openedAtMs, atMs, timedOut: atMs.some((t) => t === null) };
}

function closeAll(): void {
  for (const p of proxies) p.call.end();
  for (const c of clients.splice(0)) c.close();
  proxies = [];
  echoes = [];
  expectation = undefined;
  echoTotal = Infinity;
}

function reply(extra: Partial<RealFleetReply> = {}): RealFleetReply {
  const cpu = process.cpuUsage();
  return {
    streams: proxies.length + echoes.length,
    messages,
    bytes,
    errors,
    errorSamples,
    cpuMs: (cpu.user + cpu.system) / 1000,
    proxy0Sizes: sizes,
    ...extra,
  };
}

function resetCounters(): void {
  messages = 0;
  bytes = 0;
  errors = 0;
  errorSamples.length = 0;
}

serveParent<RealFleetCommand, RealFleetReply>(async (m) => {
  switch (m.cmd) {
    case 'open-ads':
      resetCounters();
      sizes = { cold: [], change: [] };
      openedAtMs = epochMs();
      if (m.protocol === 'sotw') openSotw(m);
      else openDelta(m);
      return reply();
    case 'await-ready':
      return reply({ arrivals: await arrivals(() => proxies.map((p) => p.readyAt), m.timeoutMs) });
    case 'expect': {
      const types = new Set(m.types.map((s) => shortToType.get(s)!));
      expectation = { marker: m.marker, types };
      for (const p of proxies) {
        p.marks = new Set();
        p.doneAt = null;
      }
      sizes.change = [];
      resetCounters();
      return reply();
    }
    case 'await-marker':
      return reply({ arrivals: await arrivals(() => proxies.map((p) => p.doneAt), m.timeoutMs) });
    case 'dump': {
      const p = proxies[0];
      const dump: Record<string, string[]> = {};
      for (const t of ALL_TYPES) dump[t] = [...(p?.types.get(t)?.resources.values() ?? [])].map((u) => enc(u).toString('base64'));
      return reply({ dump });
    }
    case 'open-echo':
      resetCounters();
      openedAtMs = epochMs();
      echoTotal = m.total;
      openEcho(m);
      return reply();
    case 'echo-total':
      echoTotal = m.total;
      for (const e of echoes) e.reachedAt = null;
      resetCounters();
      return reply();
    case 'await-echo':
      return reply({ arrivals: await arrivals(() => echoes.map((e) => e.reachedAt), m.timeoutMs) });
    case 'close':
      closeAll();
      return reply();
    case 'stats':
      return reply();
  }
}, closeAll);
