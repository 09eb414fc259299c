// The Envoy bootstrap of a sidecar: where the control plane is, how to verify it, and
// the credential the sidecar proves itself with. `meshpilot bootstrap` writes it; the
// e2e tests start Envoy with it, so both use one definition.

const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** The static cluster that carries the xDS stream. */
export const XDS_CLUSTER = 'xds-grpc';
/** The static cluster of a node agent's SDS socket (Istio's name). */
export const SDS_AGENT_CLUSTER = 'sds-grpc';
/** Node metadata key telling meshpilot to point this sidecar's secrets at its local agent's SDS instead of ADS. */
export const SDS_CLUSTER_METADATA = 'MESHPILOT_SDS_CLUSTER';
/** Node metadata key telling meshpilot this sidecar reads its SVID from files in this directory (meshpilot serve --secret-dir). */
export const CERT_DIR_METADATA = 'MESHPILOT_CERT_DIR';

/**
 * Node metadata key saying how the workload's traffic reaches this sidecar, as Istio's proxies
 * send it: `REDIRECT` (iptables capture into 15001/15006) or absent/`NONE` (loopback mode).
 */
export const INTERCEPTION_MODE_METADATA = 'INTERCEPTION_MODE';
/** Envoy's admin port in capture mode (Istio's), on 127.0.0.1 inside the workload's namespace; capture leaves it uncaptured inbound. */
export const CAPTURE_ADMIN_PORT = 15000;

/** Options of a sidecar bootstrap. */
export interface SidecarBootstrapOptions {
  readonly nodeId: string;
  readonly cluster: string;
  readonly xdsHost: string;
  readonly xdsPort: number;
  /**
   * Every control plane replica (`bootstrap --control-plane A,B,C`); replaces xdsHost/xdsPort when given.
   * The xDS cluster lists them all: when the stream to one ends, Envoy's next attempt goes to the next.
   */
  readonly xdsEndpoints?: readonly { readonly host: string; readonly port: number }[];
  /** TLS to the control plane; absent only for the plaintext development mode. */
  readonly tls?: {
    /** The mesh root(s), PEM: the control plane's certificate must chain to them. */
    readonly rootCaPem: string;
    /** The control plane's SPIFFE ID, matched against its certificate's URI SAN. */
    readonly controlPlaneId: string;
    readonly sni?: string;
  };
  /** A proxy token, sent as `authorization: Bearer …` on the xDS stream; without one, a certDir's SVID is the credential. */
  readonly token?: string;
  /** A node agent's SDS Unix socket: secrets come from it, and its SVID is the client certificate toward the control plane. */
  readonly agentSocket?: string;
  /** An absolute directory kept by `meshpilot serve --secret-dir`: the SVID and key come from its files, never over xDS. */
  readonly certDir?: string;
  readonly apiType?: 'GRPC' | 'DELTA_GRPC';
  /** Capture mode: the workload's traffic is redirected to this sidecar by iptables (`meshpilot capture`). */
  readonly capture?: boolean;
  readonly adminHost?: string;
  readonly adminPort?: number;
  /** xDS reconnect backoff; Envoy's default starts at 500 ms and grows to 30 s. */
  readonly retry?: { readonly baseMs: number; readonly maxMs: number };
}

const duration = (ms: number) => `${(ms / 1000).toFixed(3)}s`;
// The same source the listeners' `default` names (generate/resources.ts), so Envoy keeps one subscription.
const sdsFromFiles = (dir: string) => ({
  path_config_source: { path: `${dir}/default-sds.yaml`, watched_directory: { path: dir } },
  resource_api_version: 'V3',
});
const sdsFromAgent = {
  api_config_source: {
    api_type: 'GRPC',
    transport_api_version: 'V3',
    grpc_services: [{ envoy_grpc: { cluster_name: SDS_AGENT_CLUSTER } }],
  },
};

/** Builds the bootstrap as the JSON Envoy reads. */
export function sidecarBootstrap(o: SidecarBootstrapOptions): Record<string, unknown> {
  const retry = o.retry ?? { baseMs: 250, maxMs: 2_000 };
  const configSource = { ads: {}, resource_api_version: 'V3' };
  const http2 = {
    [HTTP_PROTOCOL_OPTIONS]: {
      '@type': `type.googleapis.com/${HTTP_PROTOCOL_OPTIONS}`,
      explicit_http_config: { http2_protocol_options: {} },
    },
  };
  const replicas = o.xdsEndpoints?.length ? o.xdsEndpoints : [{ host: o.xdsHost, port: o.xdsPort }];
  // STATIC takes IP addresses only; a replica named by DNS name makes the cluster STRICT_DNS.
  const byName = replicas.some((r) => !/^[\d.]+$|:/.test(r.host));
  const xdsCluster: Record<string, unknown> = {
    name: XDS_CLUSTER,
    type: byName ? 'STRICT_DNS' : 'STATIC',
    connect_timeout: '1s',
    // Round robin: the attempt after a failed one goes to the next replica, not back to the dead one.
    lb_policy: 'ROUND_ROBIN',
    load_assignment: {
      cluster_name: XDS_CLUSTER,
      endpoints: [
        {
          lb_endpoints: replicas.map((r) => ({ endpoint: { address: { socket_address: { address: r.host, port_value: r.port } } } })),
        },
      ],
    },
    // A replica whose machine vanishes sends no reset: keepalive probes notice it within about 20 s.
    upstream_connection_options: { tcp_keepalive: { keepalive_time: 10, keepalive_interval: 5, keepalive_probes: 2 } },
    typed_extension_protocol_options: http2,
  };
  if (o.tls) {
    xdsCluster.transport_socket = {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': UPSTREAM_TLS,
        sni: o.tls.sni ?? 'meshpilot',
        common_tls_context: {
          alpn_protocols: ['h2'],
          // A sidecar with a node agent proves itself with its SVID; one with a token sends no certificate.
          ...(o.agentSocket ? { tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: sdsFromAgent }] } : {}),
          // With certificate files, the SVID is the credential too, read through file-based SDS: Envoy reloads
          // it on every `..data` swap in the watched directory and new connections present the new one, so
          // the credential renews with no restart (config_source.proto, PathConfigSource.watched_directory).
          ...(o.certDir && !o.token
            ? { tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: sdsFromFiles(o.certDir) }] }
            : {}),
          validation_context: {
            trusted_ca: { inline_string: o.tls.rootCaPem },
            match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: o.tls.controlPlaneId } }],
          },
        },
      },
    };
  }
  const clusters: Record<string, unknown>[] = [xdsCluster];
  if (o.agentSocket) {
    clusters.push({
      name: SDS_AGENT_CLUSTER,
      type: 'STATIC',
      connect_timeout: '1s',
      load_assignment: {
        cluster_name: SDS_AGENT_CLUSTER,
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: o.agentSocket } } } }] }],
      },
      typed_extension_protocol_options: http2,
    });
  }
  const metadata = {
    ...(o.agentSocket ? { [SDS_CLUSTER_METADATA]: SDS_AGENT_CLUSTER } : {}),
    ...(o.certDir ? { [CERT_DIR_METADATA]: o.certDir } : {}),
    ...(o.capture ? { [INTERCEPTION_MODE_METADATA]: 'REDIRECT' } : {}),
  };
  // In capture mode Envoy has its namespace to itself: the admin takes Istio's fixed port, on loopback only.
  const adminPort = o.adminPort ?? (o.capture ? CAPTURE_ADMIN_PORT : 0);
  return {
    node: { id: o.nodeId, cluster: o.cluster, ...(Object.keys(metadata).length > 0 ? { metadata } : {}) },
    admin: { address: { socket_address: { address: o.adminHost ?? '127.0.0.1', port_value: adminPort } } },
    dynamic_resources: {
      ads_config: {
        api_type: o.apiType ?? 'GRPC',
        transport_api_version: 'V3',
        set_node_on_first_message_only: true,
        grpc_services: [
          {
            envoy_grpc: {
              cluster_name: XDS_CLUSTER,
              retry_policy: { retry_back_off: { base_interval: duration(retry.baseMs), max_interval: duration(retry.maxMs) } },
            },
            ...(o.token ? { initial_metadata: [{ key: 'authorization', value: `Bearer ${o.token}` }] } : {}),
          },
        ],
      },
      cds_config: configSource,
      lds_config: configSource,
    },
    static_resources: { clusters },
  };
}
