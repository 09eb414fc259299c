// The Envoy resources of a sidecar, one builder each: inbound listeners that require a
// mesh client certificate and forward to the local app, outbound listeners, clusters
// that check the server's SPIFFE ID (secure naming), endpoints, and the two SDS secrets.
// Builders are pure; the generators (generators.ts) decide what to build and what to reuse.
import { workloadId, type TrustDomain } from '../identity/index.js';
import { applicationProtocol, type MeshModel, type PortTrafficPolicy, type Service, type ServicePort } from '../model/index.js';
import { originationSocket, trafficPolicyFields } from './traffic-policy.js';
import {
  ApiVersion,
  type Any,
  Cluster,
  Cluster_DiscoveryType,
  Cluster_DnsLookupFamily,
  Cluster_LbPolicy,
  ClusterLoadAssignment,
  DownstreamTlsContext,
  FilterChain,
  HttpConnectionManager,
  HttpConnectionManager_ForwardClientCertDetails,
  Listener,
  packAny,
  HttpProtocolOptions,
  RouteConfiguration,
  Router,
  Secret,
  SPIFFECertValidatorConfig,
  SubjectAltNameMatcher_SanType,
  TcpProxy,
  TlsInspector,
  TypeUrl,
  UpstreamTlsContext,
} from '../proto/index.js';
import { encodedResource, type EncodedResource } from '../snapshot/index.js';
import {
  inboundCluster,
  inboundListener,
  OUTBOUND_HTTP_LISTENER,
  OUTBOUND_HTTP_PORT,
  OUTBOUND_HTTP_ROUTE,
  outboundCluster,
  outboundSni,
  outboundTcpListener,
  SDS_DEFAULT,
  SDS_ROOTCA,
  serviceHost,
} from './names.js';

/** A workload's current certificate chain (leaf first) and private key, PEM. */
export interface WorkloadSvid {
  readonly chainPem: string;
  readonly keyPem: string;
}

/** Filters a policy compiler adds to a workload's inbound side (empty when no policy applies). */
export interface InboundPolicy {
  /** HTTP filters placed before the router, in order (e.g. jwt_authn, RBAC). */
  readonly httpFilters: readonly { readonly name: string; readonly typedConfig: Any }[];
  /** Network filters placed before tcp_proxy on TCP ports (e.g. network RBAC). */
  readonly networkFilters: readonly { readonly name: string; readonly typedConfig: Any }[];
  /** The PeerAuthentication mode of this port. */
  readonly mtlsMode: 'STRICT' | 'PERMISSIVE' | 'DISABLE';
  /** HTTP connection manager options the policy's matching relies on (path normalization, host port stripping). */
  readonly hcmOptions: Readonly<Record<string, unknown>>;
}

// Istio's default when no PeerAuthentication applies is PERMISSIVE.
const noPolicy: InboundPolicy = { httpFilters: [], networkFilters: [], mtlsMode: 'PERMISSIVE', hcmOptions: {} };
/** The inbound policy when none applies. */
export const NO_POLICY = noPolicy;

const ads = { ads: {}, resourceApiVersion: ApiVersion.V3 };

/** Where a sidecar gets its secrets: over ADS from meshpilot, from a node agent's SDS cluster, or from files. */
export interface SecretSource {
  /** A static cluster in the sidecar's bootstrap that serves SDS (a node agent's socket); undefined means ADS. */
  readonly sdsCluster?: string;
  /** A directory holding key.pem, cert-chain.pem and default-sds.yaml (meshpilot serve --secret-dir); undefined means ADS. */
  readonly certDir?: string;
}

/** The SDS file inside a certificate directory that names the key and chain (Envoy's file-based SDS). */
export const DEFAULT_SDS_FILE = 'default-sds.yaml';

/** Whether the proxy's own SVID and key come from somewhere other than meshpilot (an agent or files). */
export const svidElsewhere = (source: SecretSource): boolean => source.sdsCluster !== undefined || source.certDir !== undefined;

/** A key naming the secret source, for memoizing resources that embed it. */
export const sourceVariant = (source: SecretSource): string =>
  source.sdsCluster !== undefined ? `cluster:${source.sdsCluster}` : source.certDir !== undefined ? `dir:${source.certDir}` : '';

type SdsRef = (name: string) => { name: string; sdsConfig: object };

function sdsRefFor(source: SecretSource): SdsRef {
  // The trust bundle and CRL are public and always come from meshpilot over ADS, so a VM's
  // sidecar sees revocations too; only the SVID and its key come from the local agent.
  if (source.certDir !== undefined) {
    // Envoy's file-based SDS: the path config source reloads the SDS file when an entry is moved
    // into the watched directory (config_source.proto, PathConfigSource.watched_directory), which
    // is what the file secrets module's symlink swap does once per new key and chain.
    const fileConfig = {
      pathConfigSource: { path: `${source.certDir}/${DEFAULT_SDS_FILE}`, watchedDirectory: { path: source.certDir } },
      resourceApiVersion: ApiVersion.V3,
    };
    return (name) => ({ name, sdsConfig: name === SDS_ROOTCA ? ads : fileConfig });
  }
  if (!source.sdsCluster) return (name) => ({ name, sdsConfig: ads });
  const sdsConfig = {
    apiConfigSource: {
      apiType: 2 /* GRPC */,
      transportApiVersion: ApiVersion.V3,
      grpcServices: [{ envoyGrpc: { clusterName: source.sdsCluster } }],
    },
    resourceApiVersion: ApiVersion.V3,
  };
  return (name) => ({ name, sdsConfig: name === SDS_ROOTCA ? ads : sdsConfig });
}
/** A socket address. */
export const addr = (host: string, port: number) => ({ socketAddress: { address: host, portValue: port } });
/** The HTTP router filter, last in every HCM. */
export const routerFilter = () => ({
  name: 'envoy.filters.http.router',
  typedConfig: packAny('envoy.extensions.filters.http.router.v3.Router', Router, {}),
});

/** Whether a service port carries HTTP (routed by Host) or opaque TCP; unknown protocols are treated as HTTP, as Istio's sniffing would. */
export function portKind(port: ServicePort): 'http' | 'tcp' {
  const p = applicationProtocol(port);
  return p === 'tcp' || p === 'tls' || p === 'mongo' || p === 'mysql' || p === 'redis' ? 'tcp' : 'http';
}

/** One virtual host of the outbound route configuration. */
export interface VirtualHostSpec {
  readonly name: string;
  readonly domains: readonly string[];
  readonly cluster: string;
}

/** The Host values that reach a service port, as Istio accepts them: FQDN, `name.ns`, and the short name from the same namespace, each with and without the port. */
export function hostDomains(service: Service, port: ServicePort, clientNamespace: string, domain: string): string[] {
  const names = [serviceHost(service, domain), `${service.name}.${service.namespace}.svc`, `${service.name}.${service.namespace}`];
  if (service.namespace === clientNamespace) names.push(service.name);
  return names.flatMap((n) => [`${n}:${port.port}`, n]);
}

/** The proxy's own SVID and key as the SDS secret `default`. */
export function defaultSecret(svid: WorkloadSvid): EncodedResource {
  const msg = Secret.fromPartial({
    name: SDS_DEFAULT,
    tlsCertificate: { certificateChain: { inlineString: svid.chainPem }, privateKey: { inlineString: svid.keyPem } },
  });
  return encodedResource(TypeUrl.Secret, SDS_DEFAULT, Secret, msg);
}

/** A foreign trust domain's roots, as the validation context carries them. */
export interface ForeignTrustBundle {
  readonly trustDomain: string;
  /** Concatenated PEM roots. */
  readonly pem: string;
}

/**
 * The trust bundle and CRL as the SDS validation context `ROOTCA`. With federated trust
 * domains it uses Envoy's SPIFFE certificate validator: one bundle per trust domain, chosen by
 * the peer's SPIFFE ID, so a root of domain B can never vouch for an identity of domain A.
 */
export function rootCaSecret(
  bundlePem: string,
  crlPem: string,
  trustDomain?: string,
  foreign: readonly ForeignTrustBundle[] = [],
): EncodedResource {
  const validationContext =
    foreign.length > 0 && trustDomain !== undefined
      ? {
          customValidatorConfig: {
            name: 'envoy.tls.cert_validator.spiffe',
            typedConfig: packAny('envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig', SPIFFECertValidatorConfig, {
              trustDomains: [
                // The SPIFFE validator ignores the context's `crl` field: it reads CRLs from the
                // domain's bundle and then checks every certificate of the chain against one
                // (CRL_CHECK_ALL), which our self-signed roots satisfy (each root's CRL covers it too).
                { name: trustDomain, trustBundle: { inlineString: bundlePem + crlPem } },
                ...foreign.map((f) => ({ name: f.trustDomain, trustBundle: { inlineString: f.pem } })),
              ],
            }),
          },
        }
      : {
          trustedCa: { inlineString: bundlePem },
          // Our CRL covers the certificates our CA issued: the leaves. A plug-in root's CRL for
          // the intermediate is not ours to publish, so only the leaf is checked.
          ...(crlPem ? { crl: { inlineString: crlPem }, onlyVerifyLeafCertCrl: true } : {}),
        };
  const msg = Secret.fromPartial({ name: SDS_ROOTCA, validationContext });
  return encodedResource(TypeUrl.Secret, SDS_ROOTCA, Secret, msg);
}

/** A STATIC cluster of one address (the local app behind an inbound listener). */
export function staticCluster(name: string, host: string, port: number): EncodedResource {
  const msg = Cluster.fromPartial({
    name,
    type: Cluster_DiscoveryType.STATIC,
    connectTimeout: { seconds: 1, nanos: 0 },
    loadAssignment: { clusterName: name, endpoints: [{ lbEndpoints: [{ endpoint: { address: addr(host, port) } }] }] },
  });
  return encodedResource(TypeUrl.Cluster, name, Cluster, msg);
}

/** The SPIFFE IDs a server of this service may present: one per service account its workloads run as (secure naming). */
export function allowedServerIds(model: MeshModel, trustDomain: TrustDomain, service: Service): string[] {
  return model.serviceAccountsOf(service).flatMap((sa) => {
    const id = workloadId(trustDomain, sa.namespace, sa.name);
    return id.ok ? [id.value] : [];
  });
}

function upstreamTls(serverIds: readonly string[], port: number, host: string, sds: SdsRef) {
  const sans = serverIds.map((id) => ({ sanType: SubjectAltNameMatcher_SanType.URI, matcher: { exact: id } }));
  return {
    name: 'envoy.transport_sockets.tls',
    typedConfig: packAny('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', UpstreamTlsContext, {
      sni: outboundSni(port, host),
      commonTlsContext: {
        tlsCertificateSdsSecretConfigs: [sds(SDS_DEFAULT)],
        combinedValidationContext: {
          defaultValidationContext: { matchTypedSubjectAltNames: sans },
          validationContextSdsSecretConfig: sds(SDS_ROOTCA),
        },
      },
    }),
  };
}

const TLS_MATCH_KEY = 'envoy.transport_socket_match';

/** What an outbound cluster is made of: enough to build it, and to tell whether it changed. */
export interface OutboundClusterSpec {
  /** Default `outbound|<port>||<host>`; a subset's cluster names its subset. */
  readonly name?: string;
  readonly port: number;
  readonly host: string;
  /** The SPIFFE IDs its servers may present (secure naming). */
  readonly serverIds: readonly string[];
  /** How many backends speak mTLS (run a sidecar without DISABLE on this port), of how many. */
  readonly mtlsBackends: number;
  readonly backends: number;
  /** The port speaks HTTP/2 to its servers (gRPC, http2), as Istio sets it from the port's protocol. */
  readonly http2?: boolean;
  /** How Envoy finds endpoints: over EDS (default), by DNS (endpoints inline), or the connection's original destination. */
  readonly discovery?: 'EDS' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'ORIGINAL_DST';
  /** The hostnames or addresses a DNS cluster resolves. */
  readonly dnsEndpoints?: readonly { readonly address: string; readonly port: number }[];
  /** Whether the port carries HTTP (upstream HTTP options apply). */
  readonly http?: boolean;
  /** The DestinationRule settings of this port (and subset); `tls` overrides auto mTLS. */
  readonly policy?: PortTrafficPolicy;
}

/** Whether a service port's servers speak HTTP/2 (Istio: protocol gRPC, gRPC-Web or HTTP2). */
export function speaksHttp2(port: ServicePort): boolean {
  const p = applicationProtocol(port);
  return p === 'grpc' || p === 'grpc-web' || p === 'http2';
}

const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** The cluster a client uses to reach one service port: TLS with a SAN matcher toward sidecars (Istio's auto mTLS), unless a DestinationRule sets the TLS mode. */
export function outboundClusterFor(spec: OutboundClusterSpec, source: SecretSource): EncodedResource {
  const name = spec.name ?? outboundCluster(spec.port, spec.host);
  const sds = sdsRefFor(source);
  const secretsInSnapshot = !svidElsewhere(source);
  const mesh = upstreamTls(spec.serverIds, spec.port, spec.host, sds);
  const discovery = spec.discovery ?? 'EDS';
  const msg = Cluster.fromPartial({
    name,
    type: Cluster_DiscoveryType[discovery],
    connectTimeout: { seconds: 1, nanos: 0 },
    ...(discovery === 'EDS' ? { edsClusterConfig: { edsConfig: ads } } : {}),
    ...(discovery === 'ORIGINAL_DST' ? { lbPolicy: Cluster_LbPolicy.CLUSTER_PROVIDED } : {}),
    ...(discovery === 'STRICT_DNS' || discovery === 'LOGICAL_DNS'
      ? {
          // IPv4 only, as capture mode is; `localhost` and dual-stack names then resolve to their IPv4 address.
          dnsLookupFamily: Cluster_DnsLookupFamily.V4_ONLY,
          loadAssignment: {
            clusterName: name,
            endpoints: [{ lbEndpoints: (spec.dnsEndpoints ?? []).map((e) => ({ endpoint: { address: addr(e.address, e.port) } })) }],
          },
        }
      : {}),
    // The DestinationRule's load balancer, connection pool and outlier detection, over the defaults above.
    ...(spec.policy ? (trafficPolicyFields(spec.policy, spec.http ?? false) as object) : {}),
    // gRPC and HTTP/2 ports speak HTTP/2 upstream (Istio sets it from the port's protocol); a
    // DestinationRule's idle timeout and requests per connection stay with it.
    ...(spec.http2
      ? {
          typedExtensionProtocolOptions: {
            [HTTP_PROTOCOL_OPTIONS]: packAny(HTTP_PROTOCOL_OPTIONS, HttpProtocolOptions, {
              commonHttpProtocolOptions: {
                ...(spec.policy?.connectionPool?.idleTimeoutMs !== undefined
                  ? {
                      idleTimeout: {
                        seconds: Math.floor(spec.policy.connectionPool.idleTimeoutMs / 1000),
                        nanos: (spec.policy.connectionPool.idleTimeoutMs % 1000) * 1e6,
                      },
                    }
                  : {}),
                ...(spec.policy?.connectionPool?.maxRequestsPerConnection !== undefined
                  ? { maxRequestsPerConnection: spec.policy.connectionPool.maxRequestsPerConnection }
                  : {}),
              },
              explicitHttpConfig: { http2ProtocolOptions: {} },
            }),
          },
        }
      : {}),
  });
  const tls = spec.policy?.tls;
  let meshTls = false;
  if (tls === undefined) {
    // Istio's auto mTLS: TLS toward endpoints that run a sidecar, plaintext toward the rest.
    meshTls = spec.mtlsBackends > 0;
    if (spec.mtlsBackends === spec.backends && spec.backends > 0) msg.transportSocket = mesh;
    else if (spec.mtlsBackends > 0) {
      msg.transportSocketMatches = [
        { name: 'tlsMode-istio', match: { tlsMode: 'istio' }, transportSocket: mesh },
        { name: 'tlsMode-disabled', match: {}, transportSocket: { name: 'envoy.transport_sockets.raw_buffer', typedConfig: rawBuffer() } },
      ];
    }
  } else if (tls.mode === 'ISTIO_MUTUAL') {
    meshTls = true;
    msg.transportSocket = mesh;
  } else if (tls.mode === 'SIMPLE' || tls.mode === 'MUTUAL') msg.transportSocket = originationSocket(tls, spec.host);
  // DISABLE: plaintext, whatever the servers accept (toward a STRICT server that fails, as in Istio).
  return encodedResource(TypeUrl.Cluster, name, Cluster, msg, [
    ...(discovery === 'EDS' ? [{ typeUrl: TypeUrl.ClusterLoadAssignment, name }] : []),
    ...(meshTls && secretsInSnapshot ? [{ typeUrl: TypeUrl.Secret, name: SDS_DEFAULT }] : []),
  ]);
}

/** The raw_buffer (plaintext) transport socket's config. */
export function rawBuffer(): Any {
  return { typeUrl: 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer', value: Buffer.alloc(0) };
}

/** One endpoint of a service port: where to connect, and whether it speaks mTLS. */
export interface EndpointSpec {
  readonly address: string;
  readonly port: number;
  readonly mtls: boolean;
}

/** The endpoints of one outbound cluster, each marked with its TLS mode for auto mTLS. */
export function endpointsFor(cluster: string, endpoints: readonly EndpointSpec[]): EncodedResource {
  const msg = ClusterLoadAssignment.fromPartial({
    clusterName: cluster,
    endpoints: [
      {
        lbEndpoints: endpoints.map((e) => ({
          endpoint: { address: addr(e.address, e.port) },
          metadata: { filterMetadata: { [TLS_MATCH_KEY]: { tlsMode: e.mtls ? 'istio' : 'disabled' } } },
        })),
      },
    ],
  });
  return encodedResource(TypeUrl.ClusterLoadAssignment, cluster, ClusterLoadAssignment, msg);
}

function downstreamTls(sds: SdsRef) {
  return {
    name: 'envoy.transport_sockets.tls',
    typedConfig: packAny('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', DownstreamTlsContext, {
      requireClientCertificate: true,
      commonTlsContext: { tlsCertificateSdsSecretConfigs: [sds(SDS_DEFAULT)], validationContextSdsSecretConfig: sds(SDS_ROOTCA) },
    }),
  };
}

/** The part of an inbound filter_chain_match capture mode sets: the destination port. */
export interface ChainMatch {
  readonly destinationPort?: number;
}

/** What the inbound filter chains of one service port are made of. */
export interface InboundChainSpec {
  /** The service port: stat prefix and route name come from it (and, in capture mode, the destination port matched). */
  readonly port: number;
  /** The cluster that reaches the app. */
  readonly cluster: string;
  readonly kind: 'http' | 'tcp';
  readonly policy: InboundPolicy;
  /** Name of the TCP stat prefix and of the HTTP route configuration. */
  readonly name: string;
}

/**
 * The filter chains of one inbound port, per its PeerAuthentication mode: STRICT takes only mTLS;
 * PERMISSIVE takes both, told apart by `transport_protocol` (set by the TLS inspector from the
 * first bytes); DISABLE takes plaintext only. `match` is added to each chain's filter_chain_match.
 */
export function inboundFilterChains(spec: InboundChainSpec, source: SecretSource, match: ChainMatch = {}): FilterChain[] {
  const sds = sdsRefFor(source);
  const { policy, cluster, name } = spec;
  const hasMatch = Object.keys(match).length > 0;
  const filters = (mtls: boolean) =>
    spec.kind === 'tcp'
      ? [
          ...policy.networkFilters,
          {
            name: 'envoy.filters.network.tcp_proxy',
            typedConfig: packAny('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', TcpProxy, { statPrefix: name, cluster }),
          },
        ]
      : [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typedConfig: packAny(
              'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              HttpConnectionManager,
              {
                ...policy.hcmOptions,
                statPrefix: `inbound_${spec.port}`,
                routeConfig: {
                  name,
                  virtualHosts: [{ name: 'inbound', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster } }] }],
                },
                // The app learns who called it: the caller's SPIFFE ID in x-forwarded-client-cert.
                // On plaintext it gets none, and any the caller sent is stripped (SANITIZE).
                forwardClientCertDetails: mtls
                  ? HttpConnectionManager_ForwardClientCertDetails.SANITIZE_SET
                  : HttpConnectionManager_ForwardClientCertDetails.SANITIZE,
                ...(mtls ? { setCurrentClientCertDetails: { uri: true } } : {}),
                httpFilters: [...policy.httpFilters, routerFilter()],
              },
            ),
          },
        ];
  // Chain names must differ within a listener: capture mode's one listener holds every port's chains.
  const prefix = hasMatch ? `${name}|` : '';
  const mtlsChain = { name: `${prefix}mtls`, transportSocket: downstreamTls(sds), filters: filters(true) };
  const plainChain = { name: `${prefix}plaintext`, filters: filters(false) };
  if (policy.mtlsMode === 'STRICT') return [FilterChain.fromPartial({ ...mtlsChain, ...(hasMatch ? { filterChainMatch: match } : {}) })];
  if (policy.mtlsMode === 'DISABLE') return [FilterChain.fromPartial({ ...plainChain, ...(hasMatch ? { filterChainMatch: match } : {}) })];
  return [
    FilterChain.fromPartial({ ...mtlsChain, filterChainMatch: { ...match, transportProtocol: 'tls' } }),
    FilterChain.fromPartial({ ...plainChain, filterChainMatch: { ...match, transportProtocol: 'raw_buffer' } }),
  ];
}

/** The TLS inspector listener filter, which PERMISSIVE chains need to tell TLS from plaintext. */
export function tlsInspectorFilter(): { name: string; typedConfig: Any } {
  return {
    name: 'envoy.filters.listener.tls_inspector',
    typedConfig: packAny('envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector', TlsInspector, {}),
  };
}

/** The resources an inbound chain needs in the snapshot: its cluster, and the SVID unless DISABLE or a node agent serves it. */
export function inboundRefs(cluster: string, policy: InboundPolicy, source: SecretSource): { typeUrl: TypeUrl; name: string }[] {
  return [
    { typeUrl: TypeUrl.Cluster, name: cluster },
    ...(!svidElsewhere(source) && policy.mtlsMode !== 'DISABLE' ? [{ typeUrl: TypeUrl.Secret, name: SDS_DEFAULT }] : []),
  ];
}

/** The inbound listener of one service port: the PeerAuthentication mode's filter chains, the port's policy, forwarding to the app. */
export function inboundListenerFor(
  address: string,
  port: ServicePort,
  appPort: number,
  kind: 'http' | 'tcp',
  policy: InboundPolicy,
  source: SecretSource,
): EncodedResource {
  const name = inboundListener(port.port);
  const cluster = inboundCluster(appPort);
  const filterChains = inboundFilterChains({ port: port.port, cluster, kind, policy, name }, source);
  const msg = Listener.fromPartial({
    name,
    address: addr(address, port.port),
    ...(policy.mtlsMode === 'PERMISSIVE' ? { listenerFilters: [tlsInspectorFilter()] } : {}),
    filterChains,
  });
  return encodedResource(TypeUrl.Listener, name, Listener, msg, inboundRefs(cluster, policy, source));
}

/** An outbound route configuration (by default loopback mode's `outbound_http`): one virtual host per HTTP service port. */
export function outboundRoutes(vhosts: readonly VirtualHostSpec[], name = OUTBOUND_HTTP_ROUTE): EncodedResource {
  const msg = RouteConfiguration.fromPartial({
    name,
    virtualHosts: vhosts.map((v) => ({
      name: v.name,
      domains: [...v.domains],
      routes: [{ match: { prefix: '/' }, route: { cluster: v.cluster } }],
    })),
  });
  return encodedResource(
    TypeUrl.RouteConfiguration,
    name,
    RouteConfiguration,
    msg,
    vhosts.map((v) => ({ typeUrl: TypeUrl.Cluster, name: v.cluster })),
  );
}

/** The outbound HTTP listener on the workload's address, routed by Host over RDS. */
export function outboundHttpListener(address: string): EncodedResource {
  const hcm = packAny('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', HttpConnectionManager, {
    statPrefix: OUTBOUND_HTTP_LISTENER,
    rds: { routeConfigName: OUTBOUND_HTTP_ROUTE, configSource: ads },
    httpFilters: [routerFilter()],
  });
  const msg = Listener.fromPartial({
    name: OUTBOUND_HTTP_LISTENER,
    address: addr(address, OUTBOUND_HTTP_PORT),
    filterChains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typedConfig: hcm }] }],
  });
  return encodedResource(TypeUrl.Listener, OUTBOUND_HTTP_LISTENER, Listener, msg, [
    { typeUrl: TypeUrl.RouteConfiguration, name: OUTBOUND_HTTP_ROUTE },
  ]);
}

/** The outbound listener of one TCP service port on the workload's address. */
export function tcpOutboundListener(address: string, port: number, host: string, cluster: string): EncodedResource {
  const name = outboundTcpListener(port, host);
  const msg = Listener.fromPartial({
    name,
    address: addr(address, port),
    filterChains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.tcp_proxy',
            typedConfig: packAny('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', TcpProxy, { statPrefix: name, cluster }),
          },
        ],
      },
    ],
  });
  return encodedResource(TypeUrl.Listener, name, Listener, msg, [{ typeUrl: TypeUrl.Cluster, name: cluster }]);
}
