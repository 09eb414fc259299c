import { pushOrder, sotwResponse, TypeUrl, type DiscoveryRequest } from '../proto/index.js';
import { versionOf, type EncodedResource, type ResourceSet, type Snapshot } from '../snapshot/index.js';
import { servedType, StreamError, reportUnknownNames, type StreamDeps } from './types.js';

/** A response as sent: what the proxy will ACK or NACK. The bytes are not kept past the write. */
interface SentResponse {
  readonly version: string;
  readonly nonce: string;
  readonly names: readonly string[];
  /** name → version of every resource in the response (partial types only). */
  readonly contents?: ReadonlyMap<string, string>;
}

interface BuiltResponse extends SentResponse {
  readonly bytes: Buffer;
}

/** Nonces only need to be unique within a stream; one counter for all streams makes shared responses possible. */
let nonceCounter = 0;

/**
 * xDS protocol, "grouping resources into responses": in the state-of-the-world variant a
 * Listener or Cluster response must hold every resource, while for the other types
 * (routes, endpoints, secrets) each resource stands alone and a response may carry only
 * those that changed.
 */
const PARTIAL_TYPES: ReadonlySet<TypeUrl> = new Set([TypeUrl.RouteConfiguration, TypeUrl.ClusterLoadAssignment, TypeUrl.Secret]);

/** Marks a resource whose state at the client is unknown (it was in a NACKed response: Envoy may have applied it or not). */
const UNKNOWN = '?';

/**
 * Responses shared by every stream whose subscription covers a whole resource set: keyed by
 * the set, then by what the stream held before (another set, or NONE). Entries go with their set.
 */
const sharedResponses = new WeakMap<ResourceSet, WeakMap<object, BuiltResponse>>();
const NONE = {};

interface TypeState {
  /** Explicit names; `wildcard` adds "everything of this type". */
  names: Set<string>;
  wildcard: boolean;
  sent?: SentResponse;
  /** Partial types: what we believe the client holds, name → version (UNKNOWN after a NACK). */
  client: Map<string, string>;
  /** Partial types: the set the client holds completely, when its subscription covers one; enables shared responses. */
  held?: ResourceSet;
  /** The unknown names last reported, so a steady state is reported once. */
  reportedUnknown?: string;
  acked?: string;
  /** The last version this proxy NACKed: never sent again. */
  rejected?: string;
  /** Partial types: name@version pairs the proxy NACKed, never sent again. */
  rejectedPairs: Set<string>;
}

/**
 * The state-of-the-world protocol for one stream (xDS protocol, "ACK/NACK and
 * resource type instance version", "when to send an update"), apart from gRPC:
 * requests come in through `onRequest`, snapshots through `onSnapshot`, and encoded
 * responses leave through `send`. Per type it keeps the subscription, the last
 * response (version and nonce), the last ACKed version and the last NACKed one.
 */
export class SotwStream {
  readonly #types = new Map<TypeUrl, TypeState>();
  #snapshot?: Snapshot;

  constructor(private readonly deps: StreamDeps) {}

  /** Handles one DiscoveryRequest; throws StreamError when the stream must end. */
  onRequest(req: DiscoveryRequest): void {
    const typeUrl = servedType(this.deps, req.typeUrl);
    if (!typeUrl) return;
    const log = this.deps.log;
    if (req.resourceNames.length > this.deps.limits.maxResourceNames) {
      throw new StreamError(
        'RESOURCE_EXHAUSTED',
        `request names ${req.resourceNames.length} resources; at most ${this.deps.limits.maxResourceNames}`,
      );
    }
    let st = this.#types.get(typeUrl);
    const first = !st;
    if (!st) this.#types.set(typeUrl, (st = { names: new Set(), wildcard: false, client: new Map(), rejectedPairs: new Set() }));

    if (req.responseNonce !== '') {
      if (req.responseNonce !== st.sent?.nonce) {
        // A reply carrying an old nonce predates our latest response; the xDS spec says
        // to ignore it rather than read it as an ACK or NACK (or a subscription change).
        log.debug('stale nonce ignored', { node: this.deps.proxy().nodeId, typeUrl, nonce: req.responseNonce, latest: st.sent?.nonce });
        return;
      }
      this.#ackOrNack(typeUrl, st, req);
    } else if (!first) {
      // A request without a nonce on a live stream restarts the subscription: assume nothing is held.
      st.client.clear();
      st.held = undefined;
    }

    const changed = this.#updateSubscription(st, req.resourceNames, first);
    if (changed)
      st.reportedUnknown = reportUnknownNames(this.deps, typeUrl, this.#snapshot?.resources(typeUrl), st.names, st.reportedUnknown);
    // A first request, or one that changes what the proxy wants, is owed a response.
    if (first || changed || req.responseNonce === '') this.#respond(typeUrl, st, first || req.responseNonce === '');
  }

  /** Takes a new snapshot and sends every subscribed type whose content changed. */
  onSnapshot(snap: Snapshot): void {
    this.#snapshot = snap;
    for (const typeUrl of pushOrder) {
      const st = this.#types.get(typeUrl);
      if (!st) continue;
      st.reportedUnknown = reportUnknownNames(this.deps, typeUrl, this.#snapshot?.resources(typeUrl), st.names, st.reportedUnknown);
      this.#respond(typeUrl, st, false);
    }
  }

  /** Per type: the last version sent, ACKed and NACKed, for status views. */
  typeStates(): Record<string, { sent?: string; acked?: string; rejected?: string }> {
    return Object.fromEntries([...this.#types].map(([t, s]) => [t, { sent: s.sent?.version, acked: s.acked, rejected: s.rejected }]));
  }

  #ackOrNack(typeUrl: TypeUrl, st: TypeState, req: DiscoveryRequest): void {
    const proxy = this.deps.proxy();
    const sent = st.sent!;
    if (req.errorDetail) {
      st.rejected = sent.version;
      if (sent.contents) {
        // Envoy applies each route, endpoint or secret on its own, so some of this response
        // may be in use: its resources are in an unknown state until they are sent again,
        // and these exact versions are never resent.
        for (const [name, version] of sent.contents) {
          st.client.set(name, UNKNOWN);
          st.rejectedPairs.add(`${name}@${version}`);
        }
        st.held = undefined;
      }
      this.deps.log.warn('config rejected by proxy', {
        node: proxy.nodeId,
        typeUrl,
        rejectedVersion: sent.version,
        keptVersion: req.versionInfo || st.acked,
        error: req.errorDetail.message,
        resources: sent.names,
      });
      this.deps.hooks.onNack?.(proxy, typeUrl, sent.version, req.errorDetail.message, sent.names);
      return;
    }
    if (req.versionInfo !== sent.version) {
      this.deps.log.warn('ack for unknown version ignored', { node: proxy.nodeId, typeUrl, version: req.versionInfo, sent: sent.version });
      return;
    }
    st.acked = sent.version;
    this.deps.hooks.onAck?.(proxy, typeUrl, sent.version);
  }

  #updateSubscription(st: TypeState, names: readonly string[], first: boolean): boolean {
    // xDS "how the client specifies what resources to return": an empty list on the
    // first request is the legacy wildcard; "*" asks for the wildcard explicitly; an
    // empty list later from a non-wildcard subscriber unsubscribes from everything.
    const next = new Set(names.filter((n) => n !== '*'));
    const wildcard = names.includes('*') || (names.length === 0 && (first || (st.wildcard && st.names.size === 0)));
    const changed = wildcard !== st.wildcard || next.size !== st.names.size || [...next].some((n) => !st.names.has(n));
    if (changed) {
      // Names no longer wanted are forgotten: if they come back, they are sent again.
      for (const n of st.client.keys()) if (!wildcard && !next.has(n)) st.client.delete(n);
      st.held = undefined;
    }
    st.names = next;
    st.wildcard = wildcard;
    return changed;
  }

  #respond(typeUrl: TypeUrl, st: TypeState, force: boolean): void {
    const snap = this.#snapshot;
    if (!snap) return;
    const set = snap.set(typeUrl);
    const response = PARTIAL_TYPES.has(typeUrl)
      ? this.#partial(snap, typeUrl, set, st, force)
      : this.#complete(snap, typeUrl, set, st, force);
    if (!response) return;
    st.sent = { version: response.version, nonce: response.nonce, names: response.names, contents: response.contents };
    this.deps.send(response.bytes);
    this.deps.hooks.onSend?.(this.deps.proxy(), typeUrl, response.version, response.names);
  }

  /** Listeners and clusters: every subscribed resource in every response. */
  #complete(snap: Snapshot, typeUrl: TypeUrl, set: ResourceSet | undefined, st: TypeState, force: boolean): BuiltResponse | undefined {
    const pureWildcard = st.wildcard && st.names.size === 0;
    if (pureWildcard) {
      // Every wildcard subscriber of a set gets the same response: built once, the very
      // same buffer goes to every stream (a global nonce counter keeps nonces unique per stream).
      const version = snap.typeVersion(typeUrl);
      if (version === st.rejected || (!force && version === st.sent?.version)) return undefined;
      if (!set) return this.#build(typeUrl, [], version);
      if (force && st.sent !== undefined) return this.#build(typeUrl, [...set.resources.values()], version);
      return shared(set, NONE, () => this.#build(typeUrl, [...set.resources.values()], version));
    }
    const all = snap.resources(typeUrl);
    const chosen: EncodedResource[] = st.wildcard ? [...all.values()] : [...st.names].flatMap((n) => all.get(n) ?? []);
    // Named subscriptions with nothing available wait for content; a wildcard is always
    // answered (an empty answer means "none", which Envoy needs to finish warming).
    if (chosen.length === 0 && !st.wildcard && !st.sent) return undefined;
    const version = versionOf(chosen);
    if (version === st.rejected || (!force && version === st.sent?.version)) return undefined;
    return this.#build(typeUrl, chosen, version);
  }

  /** Routes, endpoints and secrets: only what the proxy does not hold yet. */
  #partial(snap: Snapshot, typeUrl: TypeUrl, set: ResourceSet | undefined, st: TypeState, force: boolean): BuiltResponse | undefined {
    if (force) st.client.clear();
    const all = snap.resources(typeUrl);
    const covers = set !== undefined && (st.wildcard || (st.names.size === all.size && [...all.keys()].every((n) => st.names.has(n))));
    const version = snap.typeVersion(typeUrl);
    // A resource the proxy holds that is gone (an expired SVID): SotW cannot name a removal,
    // so the proxy gets the whole current state of the type, as before partial responses.
    let gone = false;
    for (const n of st.client.keys()) {
      if (!all.has(n)) {
        st.client.delete(n);
        gone = true;
      }
    }
    if (gone) st.client.clear();
    const changed: EncodedResource[] = [];
    const candidates = st.wildcard ? [...all.values()] : [...st.names].flatMap((n) => all.get(n) ?? []);
    for (const r of candidates) {
      const v = r.version();
      if (st.client.get(r.name) !== v && !st.rejectedPairs.has(`${r.name}@${v}`)) changed.push(r);
    }
    if (gone && changed.length === 0 && candidates.length === 0) return this.#build(typeUrl, [], version, true);
    // A wildcard subscription is answered once even when empty (Envoy waits for it to finish warming).
    if (changed.length === 0 && (st.sent || !st.wildcard)) {
      if (covers && st.client.size === all.size) st.held = set;
      return undefined;
    }
    const build = () => this.#build(typeUrl, changed, version, true);
    // Streams that held the same set and want the whole new one get the same bytes.
    // A stream's first answer may be shared too: no stream ever gets one shared response twice.
    const canShare =
      covers &&
      (!force || st.sent === undefined) &&
      st.rejectedPairs.size === 0 &&
      st.client.size === (st.held?.resources.size ?? 0) &&
      (st.held !== undefined || st.client.size === 0);
    const response = canShare ? shared(set, st.held ?? NONE, build) : build();
    for (const [name, v] of response.contents!) st.client.set(name, v);
    st.held = covers && st.client.size === all.size ? set : undefined;
    return response;
  }

  #build(typeUrl: TypeUrl, chosen: readonly EncodedResource[], version: string, partial = false): BuiltResponse {
    const nonce = String(++nonceCounter);
    const bytes = sotwResponse({ versionInfo: version, typeUrl, nonce, chunks: chosen.map((r) => r.sotwChunk()) });
    const names = chosen.map((r) => r.name);
    return { version, nonce, names, bytes, contents: partial ? new Map(chosen.map((r) => [r.name, r.version()])) : undefined };
  }
}

function shared(set: ResourceSet, before: object, build: () => BuiltResponse): BuiltResponse {
  let byBefore = sharedResponses.get(set);
  if (!byBefore) sharedResponses.set(set, (byBefore = new WeakMap()));
  let r = byBefore.get(before);
  if (!r) byBefore.set(before, (r = build()));
  return r;
}
