// Envoy v3 bootstrap objects for e2e tests, as the JSON Envoy reads (proto field names in snake_case).

const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const UPSTREAM_TLS_CONTEXT = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const HTTP_CONNECTION_MANAGER = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

/** The static cluster that carries the ADS stream. */
export const XDS_CLUSTER = 'xds_cluster';

/** TLS toward the control plane: files Envoy reads (PEM). */
export interface XdsTlsOptions {
  /** Roots that the control plane's serving certificate must chain to. */
  caCertFile: string;
  /** Client certificate chain and key, for a sidecar that proves itself with its SVID. */
  certChainFile?: string;
  privateKeyFile?: string;
  /** SNI sent to the control plane. */
  sni?: string;
}

/** Options for {@link adsBootstrap}. */
export interface AdsBootstrapOptions {
  nodeId: string;
  cluster: string;
  xdsHost: string;
  xdsPort: number;
  /** Admin address; default 127.0.0.1, port 0 (read it back through the harness). */
  adminHost?: string;
  adminPort?: number;
  /** State of the world (`GRPC`, default) or incremental (`DELTA_GRPC`) xDS. */
  apiType?: 'GRPC' | 'DELTA_GRPC';
  /** `node.metadata`: arbitrary JSON. */
  metadata?: Record<string, unknown>;
  tls?: XdsTlsOptions;
  /** gRPC initial metadata on the xDS stream, e.g. `{ authorization: 'Bearer …' }`. */
  initialMetadata?: Record<string, string>;
  /**
   * Reconnect backoff of the xDS stream. Envoy's own default is 500 ms doubling to 30 s, which makes a test that
   * restarts the control plane slow; the harness defaults to 250 ms up to 1 s.
   */
  xdsRetry?: { baseMs: number; maxMs: number };
  /**
   * How long Envoy waits for the first CDS and LDS answers before going on without them (`initial_fetch_timeout`);
   * Envoy's default is 15 s each. 0 means wait forever.
   */
  initialFetchTimeoutMs?: number;
}

/** Builds a sidecar bootstrap that takes listeners and clusters (and what they reference) over one ADS stream. */
export function adsBootstrap(options: AdsBootstrapOptions): object {
  const retry = options.xdsRetry ?? { baseMs: 250, maxMs: 1000 };
  const configSource: Record<string, unknown> = { ads: {}, resource_api_version: 'V3' };
  if (options.initialFetchTimeoutMs !== undefined) configSource.initial_fetch_timeout = duration(options.initialFetchTimeoutMs);
  const xdsCluster: Record<string, unknown> = {
    name: XDS_CLUSTER,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: {
      cluster_name: XDS_CLUSTER,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(options.xdsHost, options.xdsPort) } }] }],
    },
    // The xDS server speaks gRPC, which needs HTTP/2 from the first byte.
    typed_extension_protocol_options: {
      [HTTP_PROTOCOL_OPTIONS]: {
        '@type': `type.googleapis.com/${HTTP_PROTOCOL_OPTIONS}`,
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
  };
  if (options.tls !== undefined) xdsCluster.transport_socket = upstreamTls(options.tls);
  return {
    node: { id: options.nodeId, cluster: options.cluster, ...(options.metadata !== undefined ? { metadata: options.metadata } : {}) },
    admin: { address: socketAddress(options.adminHost ?? '127.0.0.1', options.adminPort ?? 0) },
    dynamic_resources: {
      ads_config: {
        api_type: options.apiType ?? 'GRPC',
        transport_api_version: 'V3',
        grpc_services: [
          {
            envoy_grpc: {
              cluster_name: XDS_CLUSTER,
              retry_policy: { retry_back_off: { base_interval: duration(retry.baseMs), max_interval: duration(retry.maxMs) } },
            },
            ...(options.initialMetadata !== undefined
              ? { initial_metadata: Object.entries(options.initialMetadata).map(([key, value]) => ({ key, value })) }
              : {}),
          },
        ],
        set_node_on_first_message_only: true,
      },
      cds_config: configSource,
      lds_config: configSource,
    },
    static_resources: { clusters: [xdsCluster] },
  };
}

/** Options for {@link staticProxyBootstrap}. */
export interface StaticProxyOptions {
  listenerName?: string;
  listenerHost?: string;
  /** 0 lets Envoy pick; read it back with `EnvoyProcess.listenerPort`. */
  listenerPort: number;
  clusterName?: string;
  upstreamHost: string;
  upstreamPort: number;
  adminHost?: string;
}

/** Builds a bootstrap with no control plane: one HTTP listener routing every request to one static upstream. */
export function staticProxyBootstrap(options: StaticProxyOptions): object {
  const listenerName = options.listenerName ?? 'ingress';
  const clusterName = options.clusterName ?? 'upstream';
  return {
    node: { id: `static~${listenerName}`, cluster: 'e2e-static' },
    admin: { address: socketAddress(options.adminHost ?? '127.0.0.1', 0) },
    static_resources: {
      listeners: [
        {
          name: listenerName,
          address: socketAddress(options.listenerHost ?? '127.0.0.1', options.listenerPort),
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': HTTP_CONNECTION_MANAGER,
                    stat_prefix: listenerName,
                    route_config: {
                      name: `${listenerName}_routes`,
                      virtual_hosts: [
                        { name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: clusterName } }] },
                      ],
                    },
                    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        {
          name: clusterName,
          type: 'STATIC',
          connect_timeout: '1s',
          load_assignment: {
            cluster_name: clusterName,
            endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(options.upstreamHost, options.upstreamPort) } }] }],
          },
        },
      ],
    },
  };
}

function socketAddress(address: string, port: number): object {
  return { socket_address: { address, port_value: port } };
}

// google.protobuf.Duration in its JSON form: seconds with up to 9 fractional digits and an 's'.
function duration(ms: number): string {
  return `${(ms / 1000).toFixed(3)}s`;
}

function upstreamTls(tls: XdsTlsOptions): object {
  const common: Record<string, unknown> = {
    // gRPC over TLS negotiates HTTP/2 by ALPN.
    alpn_protocols: ['h2'],
    validation_context: { trusted_ca: { filename: tls.caCertFile } },
  };
  if ((tls.certChainFile === undefined) !== (tls.privateKeyFile === undefined)) {
    throw new Error('xds tls: certChainFile and privateKeyFile go together');
  }
  if (tls.certChainFile !== undefined && tls.privateKeyFile !== undefined) {
    common.tls_certificates = [{ certificate_chain: { filename: tls.certChainFile }, private_key: { filename: tls.privateKeyFile } }];
  }
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: { '@type': UPSTREAM_TLS_CONTEXT, common_tls_context: common, ...(tls.sni !== undefined ? { sni: tls.sni } : {}) },
  };
}
