import { isKnownTypeUrl, pushOrder, sotwResponse, type DiscoveryRequest, type TypeUrl } from '../proto/index.js';
import type { Logger } from '../observability/index.js';
import { versionOf, type EncodedResource, type Snapshot } from '../snapshot/index.js';
import { StreamError, type ProxyInfo, type XdsHooks, type XdsLimits } from './types.js';

interface TypeState {
  /** Explicit names; `wildcard` adds "everything of this type". */
  names: Set<string>;
  wildcard: boolean;
  sent?: { version: string; nonce: string; names: readonly string[] };
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
  #nonce = 0;

  constructor(
    private readonly deps: {
      proxy: () => ProxyInfo;
      send: (bytes: Buffer) => void;
      log: Logger;
      hooks: XdsHooks;
      limits: XdsLimits;
      /** Set on per-type services (LDS, CDS, ...): requests may leave type_url empty. */
      pinnedType?: TypeUrl;
    },
  ) {}

  /** Handles one DiscoveryRequest; throws StreamError when the stream must end. */
  onRequest(req: DiscoveryRequest): void {
    const rawType = req.typeUrl || this.deps.pinnedType || '';
    const log = this.deps.log;
    if (!isKnownTypeUrl(rawType) || (this.deps.pinnedType && rawType !== this.deps.pinnedType)) {
      // Envoy may ask for types meshpilot does not serve; answering nothing keeps the
      // other types of this ADS stream working, as the protocol allows.
      log.warn('unknown type url ignored', { node: this.deps.proxy().nodeId, typeUrl: rawType, reason: 'not served' });
      return;
    }
    const typeUrl = rawType;
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
    // A first request, or one that changes what the proxy wants, is owed a response.
    if (first || changed || req.responseNonce === '') this.#respond(typeUrl, st, first || req.responseNonce === '');
  }

  /** Takes a new snapshot and sends every subscribed type whose content changed. */
  onSnapshot(snap: Snapshot): void {
    this.#snapshot = snap;
    for (const typeUrl of pushOrder) {
      const st = this.#types.get(typeUrl);
      if (st) this.#respond(typeUrl, st, false);
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
    const all = snap.resources(typeUrl);
    const chosen: EncodedResource[] = st.wildcard ? [...all.values()] : [...st.names].flatMap((n) => all.get(n) ?? []);
    // Named subscriptions with nothing available wait for content; a wildcard is always
    // answered (an empty answer means "none", which Envoy needs to finish warming).
    if (chosen.length === 0 && !st.wildcard && !st.sent) return;
    const version = versionOf(chosen);
    if (version === st.rejected) return;
    if (!force && version === st.sent?.version) return;
    const nonce = String(++this.#nonce);
    const names = chosen.map((r) => r.name);
    st.sent = { version, nonce, names };
    this.deps.send(sotwResponse({ versionInfo: version, typeUrl, nonce, chunks: chosen.map((r) => r.sotwChunk()) }));
    this.deps.hooks.onSend?.(this.deps.proxy(), typeUrl, version, names);
  }
}
