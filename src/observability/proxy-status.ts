// What each connected proxy was sent and what it accepted, per xDS type: the control
// plane's side of `istioctl proxy-status`. Fed by the xDS hooks; an entry lives exactly as
// long as the proxy has a stream open, so memory follows the connected proxies.
import type { Clock } from '../lib/index.js';

/** Istio's sync states, plus NACKED: the latest version sent was rejected by Envoy. */
export type SyncStatus = 'SYNCED' | 'NOT SENT' | 'STALE' | 'NACKED';

/** The config object a resource was generated from, and where it was written. */
export interface ResourceOrigin {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  /** `file:line` of the object (or of the field that produced the resource), when known. */
  readonly at?: string;
}

/** One rejected resource, with the object it came from when it could be named. */
export interface RejectedResource {
  readonly name: string;
  readonly origin?: ResourceOrigin;
}

/** The last rejection of one type by one proxy. */
export interface NackRecord {
  readonly version: string;
  /** Envoy's error_detail message, as sent. */
  readonly error: string;
  readonly at: number;
  readonly resources: readonly RejectedResource[];
}

/** One proxy's state for one type. */
export interface TypeStatus {
  readonly typeUrl: string;
  /** Istio's short name (cds, lds, ...). */
  readonly type: string;
  readonly status: SyncStatus;
  readonly sent?: { readonly version: string; readonly at: number; readonly resources: number };
  readonly acked?: { readonly version: string; readonly at: number; readonly sentAt?: number };
  readonly nack?: NackRecord;
  /** For STALE: how long the latest version has waited for an answer. */
  readonly pendingMs?: number;
}

/** One connected proxy. */
export interface ProxyStatus {
  readonly nodeId: string;
  readonly identity?: string;
  readonly connectedAt: number;
  readonly streams: number;
  readonly types: readonly TypeStatus[];
  /** Set while the control plane cannot build this proxy's config: it keeps its last accepted one. */
  readonly configError?: { readonly cause: string; readonly since: number };
}

/** Names the object behind a resource; `hint` is Envoy's message, for resources built from many objects. */
export type OriginResolver = (nodeId: string, typeUrl: string, resourceName: string, hint: string) => ResourceOrigin | undefined;

/** The proxy fields the tracker reads from the xDS layer's ProxyInfo. */
export interface TrackedProxy {
  readonly nodeId: string;
  readonly identity?: string;
}

/** Keeps per-proxy, per-type xDS state; its methods match the XdsHooks they are wired to. */
export interface ProxyStatusTracker {
  onConnect(p: TrackedProxy): void;
  onDisconnect(p: TrackedProxy): void;
  onSend(p: TrackedProxy, typeUrl: string, version: string, names: readonly string[]): void;
  onAck(p: TrackedProxy, typeUrl: string, version: string): void;
  onNack(p: TrackedProxy, typeUrl: string, version: string, error: string, names: readonly string[]): void;
  /** The proxy's config could not be built (or was held back); shown until a build succeeds. */
  onBuildError(nodeId: string, cause: string): void;
  /** The proxy's config was built and published. */
  onBuilt(nodeId: string): void;
  /** Every connected proxy, by node id. */
  list(): readonly ProxyStatus[];
  /** One connected proxy, or undefined. */
  get(nodeId: string): ProxyStatus | undefined;
  /** How many proxies are tracked (tests: memory follows connections). */
  size(): number;
}

interface TypeState {
  sent?: { version: string; at: number; names: readonly string[] };
  acked?: { version: string; at: number; sentAt?: number };
  nack?: NackRecord;
}

interface Entry {
  identity?: string;
  connectedAt: number;
  streams: number;
  types: Map<string, TypeState>;
  configError?: { cause: string; since: number };
}

/** At most this many rejected resources are kept per NACK: enough to act on, bounded whatever Envoy rejects. */
const MAX_REJECTED = 20;
/** Envoy's message is kept up to this many characters: it lists every listener it refused, which can be many. */
const MAX_ERROR_CHARS = 4096;

/** Creates a tracker; `types` lists the served types in display order, so a type never sent shows NOT SENT. */
export function createProxyStatusTracker(deps: {
  clock: Clock;
  types: readonly { readonly typeUrl: string; readonly name: string }[];
  resolve?: OriginResolver;
}): ProxyStatusTracker {
  const entries = new Map<string, Entry>();
  const stateOf = (nodeId: string, typeUrl: string): TypeState | undefined => {
    const e = entries.get(nodeId);
    if (!e) return undefined;
    let s = e.types.get(typeUrl);
    if (!s) e.types.set(typeUrl, (s = {}));
    return s;
  };

  function view(nodeId: string, e: Entry): ProxyStatus {
    const now = deps.clock.now();
    const types = deps.types.map(({ typeUrl, name }) => typeView(typeUrl, name, e.types.get(typeUrl) ?? {}, now));
    return {
      nodeId,
      ...(e.identity ? { identity: e.identity } : {}),
      connectedAt: e.connectedAt,
      streams: e.streams,
      types,
      ...(e.configError ? { configError: { ...e.configError } } : {}),
    };
  }

  return {
    onConnect(p) {
      const e = entries.get(p.nodeId);
      if (e) e.streams++;
      else entries.set(p.nodeId, { identity: p.identity, connectedAt: deps.clock.now(), streams: 1, types: new Map() });
    },
    onDisconnect(p) {
      const e = entries.get(p.nodeId);
      if (e && --e.streams <= 0) entries.delete(p.nodeId);
    },
    onSend(p, typeUrl, version, names) {
      const s = stateOf(p.nodeId, typeUrl);
      if (s) s.sent = { version, at: deps.clock.now(), names };
    },
    onAck(p, typeUrl, version) {
      const s = stateOf(p.nodeId, typeUrl);
      // The stream reports an ACK only for the latest response's nonce, so it answers what was last sent.
      if (s) s.acked = { version, at: deps.clock.now(), ...(s.sent?.version === version ? { sentAt: s.sent.at } : {}) };
    },
    onNack(p, typeUrl, version, error, names) {
      const s = stateOf(p.nodeId, typeUrl);
      if (!s) return;
      // Envoy's message names the resources it refused; when it names none we know, all of the response is suspect.
      const named = names.filter((n) => error.includes(n));
      const rejected = (named.length > 0 ? named : names).slice(0, MAX_REJECTED);
      s.nack = {
        version,
        error: error.length > MAX_ERROR_CHARS ? `${error.slice(0, MAX_ERROR_CHARS)}…` : error,
        at: deps.clock.now(),
        resources: rejected.map((name) => {
          const origin = deps.resolve?.(p.nodeId, typeUrl, name, error);
          return origin ? { name, origin } : { name };
        }),
      };
    },
    onBuildError(nodeId, cause) {
      const e = entries.get(nodeId);
      if (!e) return;
      const text = cause.length > MAX_ERROR_CHARS ? `${cause.slice(0, MAX_ERROR_CHARS)}…` : cause;
      // `since` is the first failure of a run of them: how long the proxy has been kept on old config.
      e.configError = { cause: text, since: e.configError?.since ?? deps.clock.now() };
    },
    onBuilt(nodeId) {
      const e = entries.get(nodeId);
      if (e) delete e.configError;
    },
    list: () => [...entries.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([id, e]) => view(id, e)),
    get(nodeId) {
      const e = entries.get(nodeId);
      return e ? view(nodeId, e) : undefined;
    },
    size: () => entries.size,
  };
}

function typeView(typeUrl: string, type: string, s: TypeState, now: number): TypeStatus {
  const base = {
    typeUrl,
    type,
    ...(s.sent ? { sent: { version: s.sent.version, at: s.sent.at, resources: s.sent.names.length } } : {}),
    ...(s.acked ? { acked: s.acked } : {}),
    ...(s.nack ? { nack: s.nack } : {}),
  };
  if (!s.sent) return { ...base, status: 'NOT SENT' };
  if (s.acked?.version === s.sent.version) return { ...base, status: 'SYNCED' };
  if (s.nack?.version === s.sent.version) return { ...base, status: 'NACKED' };
  return { ...base, status: 'STALE', pendingMs: now - s.sent.at };
}
