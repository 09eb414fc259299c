import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { systemClock, type Clock } from '../lib/index.js';

/** A certificate's validity, as the expiry gauges need it. */
export interface Validity {
  readonly notBefore: number;
  readonly notAfter: number;
}

/** The certificates whose expiry is exported, read at every scrape. */
export interface CertificateSource {
  readonly roots: readonly Validity[];
  readonly intermediates: readonly (Validity & { readonly subject?: string })[];
  /** The current SVID of each workload with a connected proxy; a workload left out loses its series. */
  readonly workloads: readonly (Validity & { readonly spiffeId: string })[];
}

/** The control plane's counters and gauges, exposed in Prometheus text format on the admin port. */
export interface Metrics {
  readonly registry: Registry;
  readonly xdsPushes: Counter<'type'>;
  readonly xdsAcks: Counter<'type'>;
  readonly xdsNacks: Counter<'type'>;
  readonly xdsConnected: Gauge;
  readonly xdsRefused: Counter<'reason'>;
  readonly secretsRefused: Counter;
  readonly svidsIssued: Counter<'reason'>;
  /** Proxies rebuilt by pushes (a push that concerns no type of a proxy does not count it). */
  readonly pushes: Counter;
  /** Proxy builds that failed; the proxy kept its last good config. */
  readonly pushErrors: Counter;
  /** Istio's `pilot_xds`: connected xDS streams, by the proxy's version. */
  readonly pilotXds: Gauge<'version'>;
  /** Istio's `pilot_xds_pushes`: responses sent, by type (cds, eds, lds, rds, sds). */
  readonly pilotXdsPushes: Counter<'type'>;
  /** Istio's `pilot_total_xds_rejects`: responses NACKed, by type. */
  readonly pilotXdsRejects: Counter<'type'>;
  /** Istio's `pilot_proxy_convergence_time`: seconds from the first event of a debounce window to its push. */
  readonly convergence: Histogram;
  /** Istio's `citadel_server_csr_count`: CSRs received. */
  readonly csrCount: Counter;
  /** Istio's `citadel_server_success_cert_issuance_count`: CSRs answered with a certificate. */
  readonly csrIssued: Counter;
  /** CSRs refused, by reason (the CSR service's error kind). */
  readonly csrRefused: Counter<'reason'>;
  /** Foreign bundles taken (roots changed), by federated trust domain. */
  readonly federationBundleUpdates: Counter<'trust_domain'>;
  /** Foreign bundle fetches refused (the last good bundle kept), by federated trust domain and reason. */
  readonly federationBundleRefusals: Counter<'trust_domain' | 'reason'>;
  /** Connections a listener's guard closed: at accept over a cap (listener-limit, source-limit), without a request in time (no-request), or never accepted (accept-error). */
  readonly connectionsRefused: Counter<'listener' | 'reason'>;
  /** Connections open now, by listener. */
  readonly connectionsOpen: Gauge<'listener'>;
  /** The process's file-descriptor limit (soft, hard), read at start. */
  readonly fdLimit: Gauge<'kind'>;
  /** Starts exporting how many (proxy, type) pairs are in each sync status, read from `source` at each scrape. */
  observeProxySync(source: () => readonly { readonly types: readonly { readonly status: string }[] }[]): void;
  /** Starts exporting seconds until expiry of the root(s), intermediates and workload SVIDs, read from `source` at each scrape. */
  observeCertificates(source: () => CertificateSource): void;
  /** Starts exporting whether the config store (etcd) is reachable, its revision and its unusable objects, read at each scrape. */
  observeConfigStore(source: () => ConfigStoreGauges): void;
  /** Starts exporting whether the shared CA store answers, its unwritten records, and whether this replica leads. */
  observeCaStore(source: () => CaStoreStatus): void;
}

/** What the config store gauges show. */
export interface ConfigStoreGauges {
  readonly connected: boolean;
  readonly revision: number;
  readonly skipped: number;
}

/** The shared CA store's state, as the store gauges need it. */
export interface CaStoreStatus {
  readonly reachable: boolean;
  readonly pendingRecords: number;
  readonly leader: boolean;
}

// Istio's buckets for pilot_proxy_convergence_time (pilot/pkg/xds/monitoring.go).
const CONVERGENCE_BUCKETS = [0.1, 0.5, 1, 3, 5, 10, 20, 30];

/** Creates the metrics on a registry of their own (so tests and processes never share one). */
export function createMetrics(deps: { clock?: Clock } = {}): Metrics {
  const clock = deps.clock ?? systemClock;
  const registry = new Registry();
  const opts = { registers: [registry] };
  let certificates: (() => CertificateSource) | undefined;
  let configStore: (() => ConfigStoreGauges) | undefined;
  const configStoreGauge = (name: string, help: string, read: (g: ConfigStoreGauges) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        if (configStore) this.set(read(configStore()));
      },
    });
  configStoreGauge(
    'meshpilot_config_store_connected',
    '1 while the config store (etcd) is watched; 0 while the last config is served without it',
    (g) => (g.connected ? 1 : 0),
  );
  configStoreGauge('meshpilot_config_store_revision', 'the config store revision this replica has applied', (g) => g.revision);
  configStoreGauge(
    'meshpilot_config_store_skipped_objects',
    'objects in the config store that cannot be used (corrupted or foreign), skipped',
    (g) => g.skipped,
  );
  let caStore: (() => CaStoreStatus) | undefined;
  let proxySync: (() => readonly { readonly types: readonly { readonly status: string }[] }[]) | undefined;
  const secondsLeft = (v: Validity) => (v.notAfter - clock.now()) / 1000;

  // Store gauges exist only on a replica with a shared CA store (read when scraped).
  const storeGauge = (name: string, help: string, read: (s: CaStoreStatus) => number) =>
    new Gauge({
      name,
      help,
      ...opts,
      collect() {
        this.reset();
        const s = caStore?.();
        if (s) this.set(read(s));
      },
    });
  storeGauge('meshpilot_ca_store_reachable', '1 when the shared CA store (etcd) answers, 0 while it does not', (s) =>
    s.reachable ? 1 : 0,
  );
  storeGauge(
    'meshpilot_ca_store_pending_records',
    'issuance records accepted but not yet written to the shared CA store',
    (s) => s.pendingRecords,
  );
  storeGauge('meshpilot_ca_singleton_leader', '1 on the replica that runs the CA singletons (CRL re-signing, pruning)', (s) =>
    s.leader ? 1 : 0,
  );

  // Expiry gauges are computed when scraped: they are never stale and a gone workload's series goes with it.
  new Gauge({
    name: 'citadel_server_root_cert_expiry_seconds',
    help: 'seconds until the earliest trusted root expires (negative: expired)',
    ...opts,
    collect() {
      this.reset();
      const roots = certificates?.().roots ?? [];
      if (roots.length > 0) this.set(Math.min(...roots.map(secondsLeft)));
    },
  });
  // Labelled by subject, so that a CA without intermediates exports no series rather than a 0 an alert would read as expired.
  new Gauge({
    name: 'citadel_server_cert_chain_expiry_seconds',
    help: 'seconds until each intermediate of the signing chain expires, by subject (absent without intermediates)',
    labelNames: ['subject'],
    ...opts,
    collect() {
      this.reset();
      for (const c of certificates?.().intermediates ?? []) this.set({ subject: c.subject ?? 'intermediate' }, secondsLeft(c));
    },
  });
  new Gauge({
    name: 'meshpilot_svid_expiry_seconds',
    help: 'seconds until the current SVID of a workload with a connected proxy expires, by SPIFFE ID',
    labelNames: ['spiffe_id'],
    ...opts,
    collect() {
      this.reset();
      for (const w of soonestPerId(certificates?.().workloads ?? [])) this.set({ spiffe_id: w.spiffeId }, secondsLeft(w));
    },
  });
  new Gauge({
    name: 'meshpilot_svid_lifetime_elapsed_ratio',
    help: 'fraction of its lifetime the current SVID has lived (renewal is due at renewAtFraction plus jitter), by SPIFFE ID',
    labelNames: ['spiffe_id'],
    ...opts,
    collect() {
      this.reset();
      for (const w of soonestPerId(certificates?.().workloads ?? []))
        this.set({ spiffe_id: w.spiffeId }, (clock.now() - w.notBefore) / Math.max(1, w.notAfter - w.notBefore));
    },
  });

  new Gauge({
    name: 'meshpilot_xds_proxy_types',
    help: 'connected (proxy, xDS type) pairs by sync status: SYNCED, NOT SENT, STALE (sent, not yet ACKed), NACKED',
    labelNames: ['status'],
    ...opts,
    collect() {
      this.reset();
      const counts: Record<string, number> = { SYNCED: 0, 'NOT SENT': 0, STALE: 0, NACKED: 0 };
      for (const p of proxySync?.() ?? []) for (const t of p.types) counts[t.status] = (counts[t.status] ?? 0) + 1;
      for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
    },
  });

  return {
    registry,
    xdsPushes: new Counter({ name: 'meshpilot_xds_pushes_total', help: 'xDS responses sent, by type', labelNames: ['type'], ...opts }),
    xdsAcks: new Counter({ name: 'meshpilot_xds_acks_total', help: 'xDS responses ACKed, by type', labelNames: ['type'], ...opts }),
    xdsNacks: new Counter({ name: 'meshpilot_xds_nacks_total', help: 'xDS responses NACKed, by type', labelNames: ['type'], ...opts }),
    xdsConnected: new Gauge({ name: 'meshpilot_xds_connected_proxies', help: 'xDS streams open now', ...opts }),
    xdsRefused: new Counter({
      name: 'meshpilot_xds_streams_refused_total',
      help: 'xDS streams refused, by reason',
      labelNames: ['reason'],
      ...opts,
    }),
    secretsRefused: new Counter({
      name: 'meshpilot_sds_requests_refused_total',
      help: 'secret requests for names not the proxy’s own',
      ...opts,
    }),
    svidsIssued: new Counter({
      name: 'meshpilot_svids_issued_total',
      help: 'workload SVIDs issued, by reason',
      labelNames: ['reason'],
      ...opts,
    }),
    pushes: new Counter({ name: 'meshpilot_proxy_rebuilds_total', help: 'proxies rebuilt by pushes', ...opts }),
    pushErrors: new Counter({
      name: 'meshpilot_proxy_build_errors_total',
      help: 'proxy builds that failed (the proxy kept its last good config)',
      ...opts,
    }),
    pilotXds: new Gauge({
      name: 'pilot_xds',
      help: 'Number of endpoints connected to this control plane using xDS, by proxy version',
      labelNames: ['version'],
      ...opts,
    }),
    pilotXdsPushes: new Counter({ name: 'pilot_xds_pushes', help: 'xDS responses sent, by type', labelNames: ['type'], ...opts }),
    pilotXdsRejects: new Counter({
      name: 'pilot_total_xds_rejects',
      help: 'xDS responses rejected by proxies (NACK), by type',
      labelNames: ['type'],
      ...opts,
    }),
    convergence: new Histogram({
      name: 'pilot_proxy_convergence_time',
      help: 'seconds from the first change of a debounce window until its push was built and handed to the streams',
      buckets: CONVERGENCE_BUCKETS,
      ...opts,
    }),
    csrCount: new Counter({ name: 'citadel_server_csr_count', help: 'CSRs received by the CSR service', ...opts }),
    csrIssued: new Counter({
      name: 'citadel_server_success_cert_issuance_count',
      help: 'CSRs answered with a certificate',
      ...opts,
    }),
    federationBundleUpdates: new Counter({
      name: 'meshpilot_federation_bundle_updates_total',
      help: 'foreign trust bundles taken with new roots, by trust domain',
      labelNames: ['trust_domain'],
      ...opts,
    }),
    federationBundleRefusals: new Counter({
      name: 'meshpilot_federation_bundle_refusals_total',
      help: 'foreign trust bundle fetches refused (the last good bundle is kept), by trust domain and reason',
      labelNames: ['trust_domain', 'reason'],
      ...opts,
    }),
    csrRefused: new Counter({
      name: 'meshpilot_csr_refused_total',
      help: 'CSRs refused, by reason',
      labelNames: ['reason'],
      ...opts,
    }),
    connectionsRefused: new Counter({
      name: 'meshpilot_connections_refused_total',
      help: 'connections closed by the connection guard, by listener (xds, admin) and reason (listener-limit, source-limit, no-request, accept-error)',
      labelNames: ['listener', 'reason'],
      ...opts,
    }),
    connectionsOpen: new Gauge({
      name: 'meshpilot_connections_open',
      help: 'connections open now, by listener',
      labelNames: ['listener'],
      ...opts,
    }),
    fdLimit: new Gauge({
      name: 'meshpilot_fd_limit',
      help: 'the process file-descriptor limit at start, by kind (soft, hard)',
      labelNames: ['kind'],
      ...opts,
    }),
    observeProxySync(source) {
      proxySync = source;
    },
    observeCertificates(source) {
      certificates = source;
    },
    observeConfigStore(source) {
      configStore = source;
    },
    observeCaStore(source) {
      caStore = source;
    },
  };
}

/** One entry per SPIFFE ID (workloads sharing an identity): the one that expires first, the one an alert cares about. */
function soonestPerId<T extends Validity & { readonly spiffeId: string }>(list: readonly T[]): T[] {
  const byId = new Map<string, T>();
  for (const w of list) {
    const prev = byId.get(w.spiffeId);
    if (!prev || w.notAfter < prev.notAfter) byId.set(w.spiffeId, w);
  }
  return [...byId.values()];
}

/** The Envoy version in a stream's user agent (`envoy/1.36.4 ...`), the label of Istio's `pilot_xds`; "unknown" otherwise. */
export function proxyVersion(userAgent: string): string {
  return /envoy\/(\d+\.\d+\.\d+)/.exec(userAgent)?.[1] ?? 'unknown';
}
