// The push path: the current model, certificates and trust material in; per-proxy
// snapshots out. Proxies are built when they connect and rebuilt, debounced, when
// something they depend on changes.
import type { CertificateAuthority } from '../ca/index.js';
import { SDS_CLUSTER_METADATA } from '../bootstrap/index.js';
import { generateSidecar, NO_POLICY, parseNodeId, type InboundPolicy, type PushContext, type SecretSource } from '../generate/index.js';
import { parseTrustDomain, workloadId, type SpiffeId } from '../identity/index.js';
import { err, ok, type Clock } from '../lib/index.js';
import type { MeshModel, ServicePort, WorkloadEntry } from '../model/index.js';
import type { Logger } from '../observability/index.js';
import type { SvidStore, Timers } from '../secrets/index.js';
import { createSnapshot, type EncodedResource, type SnapshotCache, type SnapshotSource } from '../snapshot/index.js';
import { createDebouncer } from './debouncer.js';

/** Compiles the policy that applies to a workload port; the policy module plugs in here. */
export type InboundPolicySource = (model: MeshModel, workload: WorkloadEntry, port: ServicePort, protocol: 'http' | 'tcp') => InboundPolicy;

/** The snapshot source of a running mesh, plus the hooks that feed it. */
export interface MeshSnapshots extends SnapshotSource {
  /** Takes a new valid model and rebuilds every connected proxy. */
  setModel(model: MeshModel): void;
  /** Rebuilds every connected proxy (trust bundle or CRL changed). */
  rebuildAll(): void;
  /** Rebuilds the proxies of one workload (its certificate changed). */
  rebuildWorkload(workloadKey: string): void;
  /** Builds whatever is pending now (tests, shutdown). */
  flush(): void;
  /** The SPIFFE ID a workload runs as, if the model knows the workload. */
  identityOf(namespace: string, workload: string): SpiffeId | undefined;
  close(): void;
}

/** Creates the mesh snapshot source over a snapshot cache. */
export function createMeshSnapshots(deps: {
  cache: SnapshotCache;
  ca: Pick<CertificateAuthority, 'trustBundle' | 'crl'>;
  svids: SvidStore;
  policy?: InboundPolicySource;
  /** Whether SVIDs and keys are served over ADS (false in the plaintext development mode). */
  serveKeys?: boolean;
  log: Logger;
  clock: Clock;
  timers: Timers;
  quietMs?: number;
  maxDelayMs?: number;
}): MeshSnapshots {
  let model: MeshModel | undefined;
  /** node id → { workload key, where its secrets come from, open streams } */
  const watched = new Map<string, { workloadKey: string; source: SecretSource; streams: number }>();
  const policy = deps.policy ?? (() => NO_POLICY);

  const debouncer = createDebouncer<string>({
    quietMs: deps.quietMs ?? 50,
    maxDelayMs: deps.maxDelayMs ?? 500,
    timers: deps.timers,
    now: () => deps.clock.now(),
    run: (nodes) => build([...nodes]),
  });

  const keyOf = (w: Pick<WorkloadEntry, 'namespace' | 'name'>) => `${w.namespace}/${w.name}`;

  function identity(w: WorkloadEntry, m: MeshModel): SpiffeId | undefined {
    const td = parseTrustDomain(m.settings.trustDomain);
    if (!td.ok) return undefined;
    const id = workloadId(td.value, w.serviceAccount.namespace, w.serviceAccount.name);
    return id.ok ? id.value : undefined;
  }

  function build(nodeIds: readonly string[]): void {
    const m = model;
    if (!m || nodeIds.length === 0) return;
    const td = parseTrustDomain(m.settings.trustDomain);
    if (!td.ok) return;
    const crl = deps.ca.crl();
    const ctx: PushContext = {
      model: m,
      trustDomain: td.value,
      trustBundlePem: deps.ca.trustBundle().pem,
      crlPem: crl.map((c) => c.pem).join(''),
      memo: new Map<string, EncodedResource>(),
      svidFor: (w) => {
        if (deps.serveKeys === false) return undefined;
        const id = identity(w, m);
        const cert = id ? deps.svids.get(keyOf(w), id) : undefined;
        return cert ? { chainPem: cert.chainPem, keyPem: cert.keyPem } : undefined;
      },
      inboundPolicy: (w, port, protocol) => policy(m, w, port, protocol),
    };
    for (const nodeId of nodeIds) {
      const entry = watched.get(nodeId);
      if (!entry) continue;
      const [ns, name] = entry.workloadKey.split('/') as [string, string];
      const workload = m.workload(ns, name);
      if (!workload) {
        deps.log.warn('workload left the mesh; proxy keeps its last config', { node: nodeId, workload: entry.workloadKey });
        continue;
      }
      const snap = createSnapshot(generateSidecar(workload, ctx, entry.source));
      if (!snap.ok) {
        deps.log.error('snapshot not built', { node: nodeId, cause: snap.error });
        continue;
      }
      deps.cache.set(nodeId, snap.value);
    }
  }

  return {
    watch(proxy, onSnapshot) {
      const claim = parseNodeId(proxy.nodeId);
      if (!claim) return err({ reason: `node id ${JSON.stringify(proxy.nodeId)} is not sidecar~<ip>~<workload>.<namespace>~<domain>` });
      const m = model;
      const workload = m?.workload(claim.namespace, claim.workload);
      if (!m || !workload) return err({ reason: `no workload ${claim.namespace}/${claim.workload} in the mesh config` });
      // What a proxy claims grants nothing: when it proved an identity, the workload must run as it.
      const runsAs = identity(workload, m);
      if (proxy.identity !== undefined && proxy.identity !== runsAs) {
        return err({
          reason: `proven identity ${proxy.identity} does not run workload ${claim.namespace}/${claim.workload} (runs as ${runsAs})`,
        });
      }
      const sdsCluster = proxy.metadata?.[SDS_CLUSTER_METADATA];
      const source: SecretSource = typeof sdsCluster === 'string' && sdsCluster !== '' ? { sdsCluster } : {};
      const entry = watched.get(proxy.nodeId) ?? { workloadKey: keyOf(workload), source, streams: 0 };
      entry.streams++;
      watched.set(proxy.nodeId, entry);
      if (!deps.cache.get(proxy.nodeId)) build([proxy.nodeId]);
      const inner = deps.cache.watch(proxy, onSnapshot);
      if (!inner.ok) return inner;
      return ok(() => {
        inner.value();
        const e = watched.get(proxy.nodeId);
        if (e && --e.streams <= 0) watched.delete(proxy.nodeId);
      });
    },
    setModel(next) {
      const prev = model;
      model = next;
      if (prev) for (const w of prev.workloads) if (!next.workload(w.namespace, w.name)) deps.svids.forget(keyOf(w));
      debouncer.request(watched.keys());
    },
    rebuildAll: () => debouncer.request(watched.keys()),
    rebuildWorkload(workloadKey) {
      debouncer.request([...watched].filter(([, e]) => e.workloadKey === workloadKey).map(([n]) => n));
    },
    flush: () => debouncer.flush(),
    identityOf(namespace, name) {
      const w = model?.workload(namespace, name);
      return w && model ? identity(w, model) : undefined;
    },
    close: () => debouncer.cancel(),
  };
}
