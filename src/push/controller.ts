// The push controller: the current model, certificates and trust material in; per-proxy
// snapshots out. Events (config changes, certificate changes, trust and JWKS changes) are
// merged per debounce window; for each connected proxy, each generator says whether the
// merged change concerns its type, and only those types are rebuilt, over one immutable
// push context. A proxy is built fresh when it connects (never from an old snapshot) and
// forgotten when its last stream goes.
import {
  GENERATORS,
  PushContext,
  ResourceMemo,
  svidElsewhere,
  type InboundPolicy,
  type NodeView,
  type ForeignTrustBundle,
  type PushInputs,
  type ResourceGenerator,
} from '../generate/index.js';
import { parseTrustDomain } from '../identity/index.js';
import { err, ok, type Clock } from '../lib/index.js';
import { mergeEvents, type MeshModel, type PushChange, type PushEvent, type ServicePort, type WorkloadEntry } from '../model/index.js';
import type { Logger } from '../observability/index.js';
import type { TypeUrl } from '../proto/index.js';
import type { SvidStore, Timers } from '../secrets/index.js';
import { snapshotOf, type ResourceSet, type SnapshotCache, type SnapshotSource } from '../snapshot/index.js';
import { admitProxy, identityOf, loopbackExposure, type AdmittedProxy } from './admission.js';
import { createDebouncer } from './debouncer.js';

/** Compiles the policy that applies to a workload port; the policy module plugs in here. */
export type InboundPolicySource = (model: MeshModel, workload: WorkloadEntry, port: ServicePort, protocol: 'http' | 'tcp') => InboundPolicy;

/** What the controller counts; main wires these to metrics. */
export interface PushStats {
  /** Proxies rebuilt, and types rebuilt, by one push. */
  onPush?(proxies: number, types: number, ms: number): void;
  /** A proxy's build failed or was held back: it keeps its last good config. */
  onBuildError?(nodeId: string, cause: string): void;
  /** A proxy's snapshot was built and published: whatever failed before is over. */
  onBuilt?(nodeId: string): void;
}

/** A connected proxy as the controller knows it. */
export interface ConnectedProxy {
  readonly nodeId: string;
  readonly workloadKey: string;
  readonly spiffeId: string;
  readonly streams: number;
}

/** The snapshot source of a running mesh, plus the events that feed it. */
export interface PushController extends SnapshotSource {
  /** Takes one event; the push happens after the debounce window. */
  request(event: PushEvent): void;
  /** Sets the current model; `changes` says what changed since the previous one. */
  setModel(model: MeshModel, event: PushEvent & { kind: 'config' }): void;
  /** Builds whatever is pending now (tests, shutdown). */
  flush(): void;
  /** The proxies with an open stream. */
  proxies(): readonly ConnectedProxy[];
  /** The SPIFFE ID a workload runs as, if the model knows the workload. */
  identityOf(namespace: string, workload: string): string | undefined;
  close(): void;
}

interface ProxyState {
  readonly admitted: AdmittedProxy;
  streams: number;
  readonly memo: ResourceMemo;
  /** The sets last built, by type: a push rebuilds only the types its change concerns. */
  sets: Map<TypeUrl, ResourceSet>;
}

/** Creates the push controller over a snapshot cache. */
export function createPushController(deps: {
  cache: SnapshotCache;
  ca: { trustBundle(): { pem: string }; crl(): readonly { pem: string }[] };
  /** The bundles of federated trust domains now held; a change is announced with a `trust` event. */
  foreignBundles?: () => readonly ForeignTrustBundle[];
  svids: SvidStore;
  policy: InboundPolicySource;
  /** Whether SVIDs and keys are served over ADS (false in the plaintext development mode). */
  serveKeys: boolean;
  log: Logger;
  clock: Clock;
  timers: Timers;
  stats?: PushStats;
  generators?: readonly ResourceGenerator[];
  quietMs?: number;
  maxDelayMs?: number;
  /** Proxies built per event-loop turn during a push (default 64). */
  sliceSize?: number;
}): PushController {
  const generators = deps.generators ?? GENERATORS;
  let model: MeshModel | undefined;
  const proxies = new Map<string, ProxyState>();
  const shared = new ResourceMemo();
  let pending: PushEvent[] = [];
  let closed = false;
  const debouncer = createDebouncer<string>({
    quietMs: deps.quietMs ?? 50,
    maxDelayMs: deps.maxDelayMs ?? 500,
    timers: deps.timers,
    now: () => deps.clock.now(),
    run: () => run(),
  });

  // One context serves every build until something it captured changes (the model, trust
  // material, JWKS-dependent policy): proxies connecting between pushes share its mesh-wide
  // resources instead of recomputing them per connection. Certificates are read live.
  let cached: PushContext | undefined;
  function context(m: MeshModel): PushContext | undefined {
    if (cached?.model === m) return cached;
    cached = undefined;
    const td = parseTrustDomain(m.settings.trustDomain);
    if (!td.ok) return undefined;
    const inputs: PushInputs = {
      model: m,
      trustDomain: td.value,
      trustBundlePem: deps.ca.trustBundle().pem,
      crlPem: deps.ca
        .crl()
        .map((c) => c.pem)
        .join(''),
      foreignBundles: deps.foreignBundles?.() ?? [],
      svidFor: (key) => {
        const c = deps.svids.current(key);
        return c ? { chainPem: c.chainPem, keyPem: c.keyPem } : undefined;
      },
      inboundPolicy: (w, port, protocol) => deps.policy(m, w, port, protocol),
    };
    return (cached = new PushContext(inputs, shared));
  }

  function viewOf(p: ProxyState, m: MeshModel): NodeView | undefined {
    const a = p.admitted;
    const [ns, name] = a.workloadKey.split('/') as [string, string];
    const workload = m.workload(ns, name);
    if (!workload) return undefined;
    return { nodeId: a.nodeId, workloadKey: a.workloadKey, workload, source: a.source, serveKeys: deps.serveKeys, capture: a.capture };
  }

  /** Rebuilds `types` of one proxy and publishes the snapshot; false if it keeps its last one. */
  function build(p: ProxyState, ctx: PushContext, types: readonly ResourceGenerator[], change?: PushChange): boolean {
    const nodeId = p.admitted.nodeId;
    const view = viewOf(p, ctx.model);
    if (!view) {
      deps.log.warn('workload left the mesh; proxy keeps its last config', { node: nodeId, workload: p.admitted.workloadKey });
      deps.stats?.onBuildError?.(nodeId, `workload ${p.admitted.workloadKey} is no longer in the mesh config`);
      return false;
    }
    // The workload may now run as another identity than the one this proxy proved: it gets nothing new.
    if (identityOf(ctx.model, view.workload) !== p.admitted.spiffeId) {
      deps.log.warn('workload identity changed; proxy keeps its last config', { node: nodeId, proven: p.admitted.spiffeId });
      deps.stats?.onBuildError?.(nodeId, `workload ${p.admitted.workloadKey} now runs as another identity than ${p.admitted.spiffeId}`);
      return false;
    }
    const exposure = p.admitted.capture ? undefined : loopbackExposure(ctx.model, view.workload);
    if (exposure !== undefined) {
      deps.log.warn('loopback sidecar cannot guard its app; proxy keeps its last config', { node: nodeId, cause: exposure });
      deps.stats?.onBuildError?.(nodeId, exposure);
      return false;
    }
    let sets: Map<TypeUrl, ResourceSet>;
    try {
      sets = new Map(p.sets);
      for (const g of types) sets.set(g.typeUrl, g.generate(view, ctx, p.memo));
    } catch (e) {
      const cause = e instanceof Error ? e.message : String(e);
      deps.log.error('proxy config not generated; it keeps its last config', {
        node: nodeId,
        workload: p.admitted.workloadKey,
        types: types.map((g) => g.typeUrl),
        // The objects whose change this push carried: where to look first.
        objects: change?.objects.slice(0, 20).map((o) => `${o.op} ${o.kind} ${o.namespace}/${o.name}`),
        cause,
      });
      deps.stats?.onBuildError?.(nodeId, cause);
      return false;
    }
    p.sets = sets;
    if (types.length === generators.length) p.memo.sweep();
    const snap = snapshotOf([...sets.values()]);
    if (!snap.ok) {
      deps.log.error('snapshot not built', { node: nodeId, cause: snap.error });
      deps.stats?.onBuildError?.(nodeId, snap.error);
      return false;
    }
    const dangling = snap.value.danglingReferences();
    // Until its first certificate is issued, a proxy waits: nothing half-made is published.
    if (
      dangling.length > 0 &&
      dangling.every((d) => d.typeUrl === 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret')
    ) {
      deps.log.debug('proxy waits for its certificate', { node: nodeId });
      return false;
    }
    const r = deps.cache.set(nodeId, snap.value);
    if (!r.ok) {
      deps.log.error('snapshot not published; proxy keeps its last config', { node: nodeId, cause: r.error });
      deps.stats?.onBuildError?.(nodeId, r.error);
    } else deps.stats?.onBuilt?.(nodeId);
    return r.ok;
  }

  /** Proxies built per turn of the event loop: a push over thousands of proxies never stalls the other streams for long. */
  const SLICE = deps.sliceSize ?? 64;
  let running = false;
  let rerun = false;

  function push(change: PushChange): void {
    const m = model;
    if (!m || proxies.size === 0) return;
    const ctx = context(m);
    if (!ctx) return;
    const started = deps.clock.now();
    const queue = [...proxies.values()];
    let rebuilt = 0;
    let types = 0;
    running = true;
    const step = () => {
      for (const p of queue.splice(0, SLICE)) {
        // Gone since the push started, or already rebuilt fresh by a newer model.
        if (proxies.get(p.admitted.nodeId) !== p) continue;
        const view = viewOf(p, m);
        const affected = view ? generators.filter((g) => change.full || g.affectedBy(change, view, m.settings.rootNamespace)) : generators;
        if (affected.length === 0) continue;
        rebuilt++;
        types += affected.length;
        build(p, ctx, affected, change);
      }
      if (queue.length > 0 && !closed) return void setImmediate(step);
      if (change.objects.length > 0 || change.full) shared.sweep();
      deps.stats?.onPush?.(rebuilt, types, deps.clock.now() - started);
      running = false;
      // Events that came while this push ran are merged into the next one.
      if (rerun && !closed) {
        rerun = false;
        run();
      }
    };
    step();
  }

  function run(): void {
    if (running) {
      rerun = true;
      return;
    }
    const events = pending;
    pending = [];
    if (events.length > 0) push(mergeEvents(events));
  }

  return {
    watch(proxy, onSnapshot) {
      const m = model;
      if (!m) return err({ reason: 'no mesh config loaded yet' });
      const admitted = admitProxy(m, proxy);
      if (!admitted.ok) return admitted;
      let p = proxies.get(proxy.nodeId);
      if (p && p.admitted.workloadKey !== admitted.value.workloadKey)
        return err({ reason: 'node id already connected for another workload' });
      if (!p) {
        p = { admitted: admitted.value, streams: 0, memo: new ResourceMemo(), sets: new Map() };
        proxies.set(proxy.nodeId, p);
        if (deps.serveKeys && !svidElsewhere(admitted.value.source)) deps.svids.want(admitted.value.workloadKey, admitted.value.spiffeId);
        // Built now from what is current: a proxy that was away never gets what it missed.
        deps.cache.delete(proxy.nodeId);
        const ctx = context(m);
        if (ctx) build(p, ctx, generators);
      }
      p.streams++;
      const state = p;
      const inner = deps.cache.watch(proxy, onSnapshot);
      if (!inner.ok) return inner;
      let done = false;
      return ok(() => {
        if (done) return;
        done = true;
        inner.value();
        if (--state.streams > 0 || proxies.get(proxy.nodeId) !== state) return;
        // Its last stream is gone: nothing is kept for it, so memory follows the connected proxies.
        proxies.delete(proxy.nodeId);
        deps.cache.delete(proxy.nodeId);
        if (deps.serveKeys && !svidElsewhere(state.admitted.source)) deps.svids.release(state.admitted.workloadKey);
      });
    },
    setModel(next, event) {
      const prev = model;
      model = next;
      cached = undefined;
      if (prev) for (const w of prev.workloads) if (!next.workload(w.namespace, w.name)) deps.svids.forget(`${w.namespace}/${w.name}`);
      pending.push(event);
      debouncer.request(['push']);
    },
    request(event) {
      // New trust material or JWKS keys change what a context captured; certificates are read live.
      if (event.kind !== 'svid') cached = undefined;
      pending.push(event);
      debouncer.request(['push']);
    },
    flush: () => debouncer.flush(),
    proxies: () =>
      [...proxies.values()].map((p) => ({
        nodeId: p.admitted.nodeId,
        workloadKey: p.admitted.workloadKey,
        spiffeId: p.admitted.spiffeId,
        streams: p.streams,
      })),
    identityOf(namespace, name) {
      const w = model?.workload(namespace, name);
      return w && model ? identityOf(model, w) : undefined;
    },
    close: () => {
      closed = true;
      debouncer.cancel();
      pending = [];
    },
  };
}
