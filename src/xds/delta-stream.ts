import { deltaResponse, pushOrder, type DeltaDiscoveryRequest, type TypeUrl } from '../proto/index.js';
import type { EncodedResource, Snapshot } from '../snapshot/index.js';
import { servedType, StreamError, reportUnknownNames, type StreamDeps } from './types.js';

const MAX_PENDING = 64;

/** What we hold for a resource the client may or may not have applied (it was in a NACKed response). */
const UNKNOWN = '?';

interface Pending {
  /** Names this response updated, with the version sent. */
  readonly updated: ReadonlyMap<string, { readonly version: string }>;
  readonly systemVersion: string;
}

interface TypeState {
  names: Set<string>;
  wildcard: boolean;
  /** What we believe the client holds: name → version (sent responses count until NACKed). */
  client: Map<string, string>;
  pending: Map<string, Pending>;
  /** name@version pairs the client NACKed: never sent again. */
  rejected: Set<string>;
  answeredOnce: boolean;
  reportedUnknown?: string;
}

/**
 * The incremental (delta) protocol for one stream (xDS protocol, "incremental xDS"):
 * only resources whose version differs from what the client holds are sent, and
 * removals are named. A NACK rolls our view of the client back for the resources in
 * that response and marks those exact versions as rejected.
 */
export class DeltaStream {
  readonly #types = new Map<TypeUrl, TypeState>();
  #snapshot?: Snapshot;
  #nonce = 0;

  constructor(private readonly deps: StreamDeps) {}

  /** Handles one DeltaDiscoveryRequest; throws StreamError when the stream must end. */
  onRequest(req: DeltaDiscoveryRequest): void {
    const typeUrl = servedType(this.deps, req.typeUrl);
    if (!typeUrl) return;
    const count = req.resourceNamesSubscribe.length + req.resourceNamesUnsubscribe.length + Object.keys(req.initialResourceVersions).length;
    if (count > this.deps.limits.maxResourceNames) {
      throw new StreamError('RESOURCE_EXHAUSTED', `request names ${count} resources; at most ${this.deps.limits.maxResourceNames}`);
    }
    let st = this.#types.get(typeUrl);
    const first = !st;
    if (!st) {
      st = { names: new Set(), wildcard: false, client: new Map(), pending: new Map(), rejected: new Set(), answeredOnce: false };
      this.#types.set(typeUrl, st);
      // A reconnecting client says what it already holds, so unchanged resources are not resent.
      for (const [name, version] of Object.entries(req.initialResourceVersions)) st.client.set(name, version);
    }

    if (req.responseNonce !== '') this.#ackOrNack(typeUrl, st, req);

    const subscribe = req.resourceNamesSubscribe;
    // Legacy wildcard: a first request that subscribes to nothing wants everything.
    if (first && subscribe.length === 0) st.wildcard = true;
    for (const n of subscribe) {
      if (n === '*') st.wildcard = true;
      else st.names.add(n);
    }
    for (const n of req.resourceNamesUnsubscribe) {
      if (n === '*') st.wildcard = false;
      else {
        st.names.delete(n);
        st.client.delete(n);
      }
    }
    if (subscribe.length > 0)
      st.reportedUnknown = reportUnknownNames(this.deps, typeUrl, this.#snapshot?.resources(typeUrl), st.names, st.reportedUnknown);
    if (first || subscribe.length > 0) this.#respond(typeUrl, st);
  }

  /** Takes a new snapshot and sends each subscribed type's changes. */
  onSnapshot(snap: Snapshot): void {
    this.#snapshot = snap;
    for (const typeUrl of pushOrder) {
      const st = this.#types.get(typeUrl);
      if (!st) continue;
      st.reportedUnknown = reportUnknownNames(this.deps, typeUrl, this.#snapshot?.resources(typeUrl), st.names, st.reportedUnknown);
      this.#respond(typeUrl, st);
    }
  }

  #ackOrNack(typeUrl: TypeUrl, st: TypeState, req: DeltaDiscoveryRequest): void {
    const proxy = this.deps.proxy();
    const pending = st.pending.get(req.responseNonce);
    if (!pending) {
      this.deps.log.debug('stale nonce ignored', { node: proxy.nodeId, typeUrl, nonce: req.responseNonce });
      return;
    }
    st.pending.delete(req.responseNonce);
    if (req.errorDetail) {
      // Envoy applies what it can of a response and NACKs the rest, so after a NACK each
      // resource in it may or may not be in use. It is neither "held" nor "absent": an
      // unknown state, so the next response sends its current version (unless that exact
      // version was rejected) and a later removal is still announced.
      for (const [name, { version }] of pending.updated) {
        st.rejected.add(`${name}@${version}`);
        if (st.client.get(name) === version) st.client.set(name, UNKNOWN);
      }
      const names = [...pending.updated.keys()];
      this.deps.log.warn('config rejected by proxy', {
        node: proxy.nodeId,
        typeUrl,
        rejectedVersion: pending.systemVersion,
        error: req.errorDetail.message,
        resources: names,
      });
      this.deps.hooks.onNack?.(proxy, typeUrl, pending.systemVersion, req.errorDetail.message, names);
      return;
    }
    this.deps.hooks.onAck?.(proxy, typeUrl, pending.systemVersion);
  }

  #respond(typeUrl: TypeUrl, st: TypeState): void {
    const snap = this.#snapshot;
    if (!snap) return;
    const all = snap.resources(typeUrl);
    const wanted = (name: string) => st.wildcard || st.names.has(name);
    const updated: EncodedResource[] = [];
    const candidates = st.wildcard ? all.values() : [...st.names].flatMap((n) => all.get(n) ?? []);
    for (const r of candidates) {
      const v = r.version();
      if (st.client.get(r.name) !== v && !st.rejected.has(`${r.name}@${v}`)) updated.push(r);
    }
    const removed = [...st.client.keys()].filter((n) => wanted(n) && !all.has(n));
    // The first answer to a wildcard subscription goes out even when empty: Envoy waits for it to finish warming.
    if (updated.length === 0 && removed.length === 0 && (st.answeredOnce || !st.wildcard)) return;
    st.answeredOnce = true;
    const nonce = String(++this.#nonce);
    const systemVersion = snap.typeVersion(typeUrl);
    const record = new Map<string, { version: string }>();
    for (const r of updated) {
      record.set(r.name, { version: r.version() });
      st.client.set(r.name, r.version());
    }
    for (const n of removed) st.client.delete(n);
    st.pending.set(nonce, { updated: record, systemVersion });
    // A client that never ACKs must not grow this map without bound; Envoy ACKs every response.
    if (st.pending.size > MAX_PENDING) st.pending.delete(st.pending.keys().next().value!);
    this.deps.send(
      deltaResponse({ systemVersionInfo: systemVersion, typeUrl, nonce, chunks: updated.map((r) => r.deltaChunk()), removed }),
    );
    this.deps.hooks.onSend?.(this.deps.proxy(), typeUrl, systemVersion, [...record.keys()]);
  }
}
