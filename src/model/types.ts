// Domain types of the mesh: what the config says, parsed and normalized. Everything is readonly;
// lists are always present (an empty list means "not set", as in the Istio protobuf API).

/** A line and column (both 1-based) in a config file. */
export interface SourcePosition {
  readonly line: number;
  readonly column: number;
}

/**
 * Where an object came from: its file and the position of its document, plus the position of
 * every field by path (`spec.rules[2].from[0]`), so compilers can point at the exact line.
 */
export interface SourceRef extends SourcePosition {
  readonly file: string;
  readonly fields?: ReadonlyMap<string, SourcePosition>;
  /** Where the object sits in its document when it is an item of a `kind: List` (`items[2]`); field paths are below it. */
  readonly pathPrefix?: string;
}

/** Kubernetes-style labels (or a label selector's matchLabels). */
export type Labels = Readonly<Record<string, string>>;

/** The kinds of object the model holds; MeshConfig is the mesh-wide settings object. */
export type ObjectKind =
  | 'ServiceAccount'
  | 'Service'
  | 'WorkloadEntry'
  | 'PeerAuthentication'
  | 'AuthorizationPolicy'
  | 'RequestAuthentication'
  | 'Sidecar'
  | 'ServiceEntry'
  | 'DestinationRule'
  | 'MeshConfig';

/** Names one object of the model. */
export interface ObjectRef {
  readonly kind: ObjectKind;
  readonly namespace: string;
  readonly name: string;
}

/** Name, namespace and origin shared by every namespaced object; `origin` never takes part in versions. */
export interface ObjectMeta {
  readonly namespace: string;
  readonly name: string;
  readonly origin?: SourceRef;
}

/** Names a service account; SPIFFE IDs are formatted from it (with the trust domain) by the identity module. */
export interface ServiceAccountRef {
  readonly namespace: string;
  readonly name: string;
}

/** A `v1 ServiceAccount`: an identity workloads run as. */
export interface ServiceAccount extends ObjectMeta {
  readonly labels: Labels;
}

/** One port of a Service; only TCP is supported. */
export interface ServicePort {
  readonly name?: string;
  readonly port: number;
  /** The workload port traffic is sent to (defaults to `port`); a WorkloadEntry's `ports[name]` overrides it. */
  readonly targetPort: number;
  readonly protocol: 'TCP';
  /** Kubernetes `appProtocol` (e.g. `http`, `grpc`), as written. */
  readonly appProtocol?: string;
}

/** A `v1 Service`: a name and ports in front of the workloads (same namespace) its selector matches. */
export interface Service extends ObjectMeta {
  /** metadata.labels */
  readonly labels: Labels;
  readonly ports: readonly ServicePort[];
  /** Non-empty: a Service with no selector selects nothing. */
  readonly selector: Labels;
  /** `spec.clusterIP` as written (an IPv4 literal), if any. */
  readonly clusterIP?: string;
  /** The service's virtual IP: its clusterIP, else one the config loader assigned from MeshConfig serviceCidr. */
  readonly vip?: string;
}

/** The label Istio uses on endpoints to mark a workload that runs a sidecar (value `istio`). */
export const TLS_MODE_LABEL = 'security.istio.io/tlsMode';

/**
 * A `networking.istio.io/v1 WorkloadEntry`: one workload (a VM or process with its own IP).
 * `sidecar` follows Istio: true exactly when the label `security.istio.io/tlsMode` is `istio`.
 */
export interface WorkloadEntry extends ObjectMeta {
  /** The IPv4 or IPv6 literal the workload listens on. */
  readonly address: string;
  /** `spec.labels`: the endpoint labels that Service selectors and policy selectors match. */
  readonly labels: Labels;
  /** metadata.labels: kept for completeness; selection uses `labels`. */
  readonly metadataLabels: Labels;
  /** Same namespace as the workload. */
  readonly serviceAccount: ServiceAccountRef;
  /** Service port name → the port this workload listens on for it. */
  readonly ports: Readonly<Record<string, number>>;
  readonly sidecar: boolean;
}

/** Mutual TLS mode of a PeerAuthentication (Istio's enum). */
export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

/**
 * A `security.istio.io/v1 PeerAuthentication`. Without a selector it is namespace-wide, or
 * mesh-wide in the root namespace; `mtlsMode` is UNSET (inherit) when `mtls` is absent.
 */
export interface PeerAuthentication extends ObjectMeta {
  readonly selector?: Labels;
  readonly mtlsMode: MtlsMode;
  /** Workload port → mode; only allowed with a selector. */
  readonly portLevelMtls: Readonly<Record<number, MtlsMode>>;
}

/** The AuthorizationPolicy actions; CUSTOM hands matching requests to an external authorizer named by `provider`. */
export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

/** `rules[].from[].source` of an AuthorizationPolicy. */
export interface AuthzSource {
  readonly principals: readonly string[];
  readonly notPrincipals: readonly string[];
  /** `<namespace>/<service-account>` (Istio 1.24+; the parser qualifies a bare name): that service account in any trust domain. */
  readonly serviceAccounts?: readonly string[];
  readonly notServiceAccounts?: readonly string[];
  readonly requestPrincipals: readonly string[];
  readonly notRequestPrincipals: readonly string[];
  readonly namespaces: readonly string[];
  readonly notNamespaces: readonly string[];
  readonly ipBlocks: readonly string[];
  readonly notIpBlocks: readonly string[];
  readonly remoteIpBlocks: readonly string[];
  readonly notRemoteIpBlocks: readonly string[];
}

/** `rules[].to[].operation` of an AuthorizationPolicy; ports are strings of digits, as in Istio. */
export interface AuthzOperation {
  readonly hosts: readonly string[];
  readonly notHosts: readonly string[];
  readonly ports: readonly string[];
  readonly notPorts: readonly string[];
  readonly methods: readonly string[];
  readonly notMethods: readonly string[];
  readonly paths: readonly string[];
  readonly notPaths: readonly string[];
}

/** `rules[].when[]` of an AuthorizationPolicy. */
export interface AuthzCondition {
  readonly key: string;
  readonly values: readonly string[];
  readonly notValues: readonly string[];
}

/** One rule: it matches when any `from`, any `to` and every `when` match (empty lists match anything). */
export interface AuthzRule {
  readonly from: readonly { readonly source: AuthzSource }[];
  readonly to: readonly { readonly operation: AuthzOperation }[];
  readonly when: readonly AuthzCondition[];
}

/** A `security.istio.io/v1 AuthorizationPolicy`; an ALLOW policy with no rules denies everything it selects. */
export interface AuthorizationPolicy extends ObjectMeta {
  readonly selector?: Labels;
  readonly action: AuthzAction;
  readonly rules: readonly AuthzRule[];
  /** Annotation `istio.io/dry-run: "true"`: evaluated and counted by the proxy, never enforced. */
  readonly dryRun?: boolean;
  /** `provider.name` of a CUSTOM policy: an `extensionProviders` entry of the MeshConfig. */
  readonly provider?: string;
}

/** One JWT rule of a RequestAuthentication, after Istio's API. */
export interface JwtRule {
  readonly issuer: string;
  readonly audiences: readonly string[];
  /** Inline JWKS (JSON text, checked to hold a `keys` array). */
  readonly jwks?: string;
  readonly jwksUri?: string;
  readonly fromHeaders: readonly { readonly name: string; readonly prefix?: string }[];
  readonly fromParams: readonly string[];
  readonly fromCookies: readonly string[];
  readonly outputPayloadToHeader?: string;
  readonly outputClaimToHeaders: readonly { readonly header: string; readonly claim: string }[];
  readonly forwardOriginalToken: boolean;
  /** JWKS fetch timeout in milliseconds, when set. */
  readonly timeoutMs?: number;
  /** Claims read as space-delimited lists, besides `scope` and `permission` (Istio's defaults). */
  readonly spaceDelimitedClaims?: readonly string[];
}

/** A `security.istio.io/v1 RequestAuthentication`. */
export interface RequestAuthentication extends ObjectMeta {
  readonly selector?: Labels;
  readonly jwtRules: readonly JwtRule[];
}

/**
 * One `egress[].hosts` entry of a Sidecar, `<namespace>/<host>`: `namespace` is a namespace, `*`
 * (any), `.` (the Sidecar's own namespace) or `~` (none); `host` is `*`, `*.<suffix>` or a host name.
 */
export interface SidecarHost {
  readonly namespace: string;
  readonly host: string;
}

/**
 * A `networking.istio.io/v1 Sidecar`: which services its proxies receive config for (the union of
 * every egress listener's hosts) and what they do with unknown destinations. Without a selector it
 * is its namespace's default, or the mesh default in the root namespace.
 */
export interface Sidecar extends ObjectMeta {
  readonly selector?: Labels;
  readonly egressHosts: readonly SidecarHost[];
  /** `outboundTrafficPolicy.mode`, when set (else the MeshConfig's). */
  readonly outboundTrafficPolicy?: 'ALLOW_ANY' | 'REGISTRY_ONLY';
}

/** Where a ServiceEntry's service runs: outside the mesh (no mTLS unless a DestinationRule says so), or inside it. */
export type ServiceEntryLocation = 'MESH_EXTERNAL' | 'MESH_INTERNAL';

/** How a ServiceEntry's endpoints are found (Istio's ServiceEntry.Resolution). */
export type ServiceEntryResolution = 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN';

/** One port of a ServiceEntry; `protocol` is Istio's, uppercased (HTTP, HTTPS, HTTP2, GRPC, TCP, TLS, MONGO, ...). */
export interface ServiceEntryPort {
  readonly number: number;
  readonly protocol: string;
  readonly name: string;
  /** The endpoints' port when an endpoint does not name one for this port; default `number`. */
  readonly targetPort?: number;
}

/** One endpoint of a STATIC or DNS ServiceEntry (Istio's WorkloadEntry shape inside `endpoints`). */
export interface ServiceEntryEndpoint {
  /** An IP literal (STATIC) or a hostname (DNS). */
  readonly address: string;
  /** Port name → the endpoint's port. */
  readonly ports: Readonly<Record<string, number>>;
  readonly labels: Labels;
  /** Service account (same namespace) the endpoint runs as, for secure naming of MESH_INTERNAL entries. */
  readonly serviceAccount?: string;
}

/** A `networking.istio.io/v1 ServiceEntry`: hosts added to the mesh's registry. */
export interface ServiceEntry extends ObjectMeta {
  /** Fully qualified host names (no wildcards). */
  readonly hosts: readonly string[];
  /** Virtual IPs (IPv4 literals) the hosts are reached at in capture mode. */
  readonly addresses: readonly string[];
  readonly ports: readonly ServiceEntryPort[];
  readonly location: ServiceEntryLocation;
  readonly resolution: ServiceEntryResolution;
  readonly endpoints: readonly ServiceEntryEndpoint[];
  /** MESH_INTERNAL: WorkloadEntries of its namespace with these labels are its endpoints. */
  readonly workloadSelector?: Labels;
  /** SPIFFE IDs (or other SANs) the servers must present (secure naming). */
  readonly subjectAltNames: readonly string[];
  /** The VIP the config loader gave it for capture mode: `addresses[0]`, else one assigned from serviceCidr. */
  readonly vip?: string;
}

/** Istio's ClientTLSSettings.TLSmode. */
export type ClientTlsMode = 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';

/** `trafficPolicy.tls` of a DestinationRule; certificate fields are absolute file paths. */
export interface ClientTls {
  readonly mode: ClientTlsMode;
  readonly clientCertificate?: string;
  readonly privateKey?: string;
  readonly caCertificates?: string;
  readonly sni?: string;
  readonly subjectAltNames: readonly string[];
  readonly insecureSkipVerify: boolean;
}

/** `trafficPolicy.loadBalancer` (the `simple` policies Envoy has a cluster policy for). */
export interface LoadBalancerSettings {
  readonly simple: 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';
}

/** `trafficPolicy.connectionPool`; durations in milliseconds. */
export interface ConnectionPoolSettings {
  readonly maxConnections?: number;
  readonly connectTimeoutMs?: number;
  readonly http1MaxPendingRequests?: number;
  readonly http2MaxRequests?: number;
  readonly maxRequestsPerConnection?: number;
  readonly maxRetries?: number;
  readonly idleTimeoutMs?: number;
}

/** `trafficPolicy.outlierDetection`; durations in milliseconds. */
export interface OutlierDetectionSettings {
  readonly consecutive5xxErrors?: number;
  readonly consecutiveGatewayErrors?: number;
  readonly intervalMs?: number;
  readonly baseEjectionTimeMs?: number;
  readonly maxEjectionPercent?: number;
  readonly minHealthPercent?: number;
}

/** The parts of a traffic policy that may be set per port or per subset. */
export interface PortTrafficPolicy {
  readonly loadBalancer?: LoadBalancerSettings;
  readonly connectionPool?: ConnectionPoolSettings;
  readonly outlierDetection?: OutlierDetectionSettings;
  readonly tls?: ClientTls;
}

/** `trafficPolicy` of a DestinationRule or of one of its subsets. */
export interface TrafficPolicy extends PortTrafficPolicy {
  /** Port number → settings that override the ones above for that port (field by field, as Istio merges them). */
  readonly portLevelSettings: Readonly<Record<number, PortTrafficPolicy>>;
}

/** A named subset of a destination's endpoints (by labels), with its own cluster `outbound|port|name|host`. */
export interface DestinationSubset {
  readonly name: string;
  readonly labels: Labels;
  readonly trafficPolicy?: TrafficPolicy;
}

/** A `networking.istio.io/v1 DestinationRule`: how clients talk to one host. */
export interface DestinationRule extends ObjectMeta {
  /** As written; a short name is qualified with the rule's namespace by `destinationHost`. */
  readonly host: string;
  readonly trafficPolicy?: TrafficPolicy;
  readonly subsets: readonly DestinationSubset[];
  /** Only the sidecars of workloads with these labels (in the rule's namespace) use it. */
  readonly workloadSelector?: Labels;
}
