import { Counter, Gauge, Registry } from 'prom-client';

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
}

/** Creates the metrics on a registry of their own (so tests and processes never share one). */
export function createMetrics(): Metrics {
  const registry = new Registry();
  const opts = { registers: [registry] };
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
  };
}
