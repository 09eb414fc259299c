import { pushOrder, sotwResponse, type DiscoveryRequest, type TypeUrl } from '../proto/index.js';
import { versionOf, type EncodedResource, type Snapshot } from '../snapshot/index.js';
import { servedType, StreamError, reportUnknownNames, type StreamDeps } from './types.js';

/** A response as sent: what the proxy will ACK or NACK. */
interface SentResponse {
  readonly version: string;
  readonly nonce: string;
  readonly names: readonly string[];
  readonly bytes: Buffer;
}

/** Nonces only need to be unique within a stream; one counter for all streams makes shared responses possible. */
let nonceCounter = 0;

/** Wildcard responses per snapshot and type, shared by every stream; entries go with their snapshot. */
const sharedResponses = new WeakMap<Snapshot, Map<TypeUrl, SentResponse>>();

interface TypeState {
  /** Explicit names; `wildcard` adds "everything of this type". */
  names: Set<string>;
  wildcard: boolean;
  sent?: SentResponse;
  /** The unknown names last reported, so a steady state is reported once. */
  reportedUnknown?: string;
  acked?: string;
  /** The last version this proxy NACKed: never sent again. */
  rejected?: string;
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
    if (!st) this.#types.set(typeUrl, (st = { names: new Set(), wildcard: false }));

    if (req.responseNonce !== '') {
      if (req.responseNonce !== st.sent?.nonce) {
        // A reply carrying an old nonce predates our latest response; the xDS spec says
        // to ignore it rather than read it as an ACK or NACK (or a subscription change).
        log.debug('stale nonce ignored', { node: this.deps.proxy().nodeId, typeUrl, nonce: req.responseNonce, latest: st.sent?.nonce });
        return;
      }
      this.#ackOrNack(typeUrl, st, req);
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

  /** The last ACKed version per type, for the debug endpoint. */
  ackedVersions(): Record<string, string | undefined> {
    return Object.fromEntries([...this.#types].map(([t, s]) => [t, s.acked]));
  }

  #ackOrNack(typeUrl: TypeUrl, st: TypeState, req: DiscoveryRequest): void {
    const proxy = this.deps.proxy();
    const sent = st.sent!;
    if (req.errorDetail) {
      st.rejected = sent.version;
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
    st.names = next;
    st.wildcard = wildcard;
    return changed;
  }

  #respond(typeUrl: TypeUrl, st: TypeState, force: boolean): void {
    const snap = this.#snapshot;
    if (!snap) return;
    const pureWildcard = st.wildcard && st.names.size === 0;
    // Every wildcard subscriber of a snapshot gets the same response: it is built once
    // and the very same buffer goes to every stream (only its nonce must be unique
    // within a stream, and a global counter makes it so).
    const version = pureWildcard ? snap.typeVersion(typeUrl) : undefined;
    if (version !== undefined && (version === st.rejected || (!force && version === st.sent?.version))) return;
    const cached = pureWildcard && !force ? sharedResponses.get(snap)?.get(typeUrl) : undefined;
    const response = cached ?? this.#build(snap, typeUrl, st, version);
    if (!response) return;
    if (response.version === st.rejected) return;
    if (!force && response.version === st.sent?.version) return;
    if (pureWildcard && !force && !cached) {
      let byType = sharedResponses.get(snap);
      if (!byType) sharedResponses.set(snap, (byType = new Map()));
      byType.set(typeUrl, response);
    }
    st.sent = response;
    this.deps.send(response.bytes);
    this.deps.hooks.onSend?.(this.deps.proxy(), typeUrl, response.version, response.names);
  }

  #build(snap: Snapshot, typeUrl: TypeUrl, st: TypeState, knownVersion?: string): SentResponse | undefined {
    const all = snap.resources(typeUrl);
    const chosen: EncodedResource[] = st.wildcard ? [...all.values()] : [...st.names].flatMap((n) => all.get(n) ?? []);
    // Named subscriptions with nothing available wait for content; a wildcard is always
    // answered (an empty answer means "none", which Envoy needs to finish warming).
    if (chosen.length === 0 && !st.wildcard && !st.sent) return undefined;
    const version = knownVersion ?? versionOf(chosen);
    const nonce = String(++nonceCounter);
    const bytes = sotwResponse({ versionInfo: version, typeUrl, nonce, chunks: chosen.map((r) => r.sotwChunk()) });
    return { version, nonce, names: chosen.map((r) => r.name), bytes };
  }
}
