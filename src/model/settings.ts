import type { SourceRef } from './types.js';

/** How workloads reach their sidecars; see MeshSettings.captureMode. */
export type CaptureMode = 'loopback' | 'iptables';
/** Istio's MeshConfig.OutboundTrafficPolicy.Mode: pass unknown destinations through, or refuse them. */
export type OutboundTrafficMode = 'ALLOW_ANY' | 'REGISTRY_ONLY';

/** Where this mesh serves its SPIFFE bundle to federated meshes (SPIFFE bundle endpoint, profile https_spiffe). */
export interface BundleEndpointSettings {
  /** Address the endpoint listens on. */
  readonly address: string;
  readonly port: number;
  /** The `spiffe_refresh_hint` it publishes, in seconds; default 300. */
  readonly refreshHintSeconds: number;
}

/**
 * A foreign trust domain this mesh trusts (SPIRE's `federates_with`). With a bundle endpoint,
 * its bundle is fetched and refreshed (profile https_spiffe: the endpoint must present
 * `endpointSpiffeId`, chained to the bundle held before); without one, `trustBundleFile` is a
 * static bundle (air-gapped setups).
 */
export interface FederatedTrustDomain {
  readonly trustDomain: string;
  readonly bundleEndpointUrl?: string;
  readonly endpointSpiffeId?: string;
  /** The initial (or static) bundle, a SPIFFE bundle (JSON) or PEM roots; absolute path. */
  readonly trustBundleFile: string;
}

/** `includeRequestBodyInCheck` of an external authorizer (Envoy's with_request_body). */
export interface ExtAuthzBodySettings {
  readonly maxRequestBytes: number;
  readonly allowPartialMessage: boolean;
  readonly packAsBytes: boolean;
}

/**
 * One `extensionProviders` entry that is an external authorizer (Istio's envoyExtAuthzHttp or
 * envoyExtAuthzGrpc): `service` is a mesh service's host, reached at `port` through its outbound cluster.
 */
export interface ExtAuthzProvider {
  readonly name: string;
  readonly kind: 'http' | 'grpc';
  /** The service's host as written, without a `<namespace>/` prefix (`ext-authz.foo.svc.cluster.local`). */
  readonly service: string;
  readonly port: number;
  /** Istio's default is 600s. */
  readonly timeoutMs: number;
  readonly failOpen: boolean;
  /** HTTP status when the authorizer cannot be reached (and failOpen is off); Istio's default 403. */
  readonly statusOnError: number;
  readonly clearRouteCache: boolean;
  readonly includeRequestBodyInCheck?: ExtAuthzBodySettings;
  // envoyExtAuthzHttp only:
  readonly pathPrefix?: string;
  readonly includeRequestHeadersInCheck: readonly string[];
  readonly includeAdditionalHeadersInCheck: Readonly<Record<string, string>>;
  readonly headersToUpstreamOnAllow: readonly string[];
  readonly headersToDownstreamOnDeny: readonly string[];
  readonly headersToDownstreamOnAllow: readonly string[];
}

/**
 * Mesh-wide settings, from the single `meshpilot.io/v1alpha1 MeshConfig` (defaults otherwise).
 * Certificates are renewed at `renewAtFraction` of their lifetime, earlier by a random amount of
 * up to `renewJitterFraction` of the lifetime, so a fleet issued together does not renew together.
 */
export interface MeshSettings {
  /** Trust domain of every SPIFFE ID the CA issues; default `cluster.local`. */
  readonly trustDomain: string;
  /** Other trust domains whose principals policies treat as this one (Istio's trustDomainAliases). */
  readonly trustDomainAliases: readonly string[];
  /** DNS suffix of service hostnames (`<svc>.<ns>.svc.<domainSuffix>`); default `cluster.local`. */
  readonly domainSuffix: string;
  /** Namespace whose selector-less policies are mesh-wide; default `istio-system`. */
  readonly rootNamespace: string;
  /** Lifetime of a workload certificate (SVID) in milliseconds; default 24h. */
  readonly certTtlMs: number;
  /** Longest lifetime the CA grants on request, in milliseconds; default 7 days (168h), tighter than Istio's 90 days. */
  readonly maxCertTtlMs: number;
  /** Fraction of a certificate's lifetime after which it is renewed; default 0.5. */
  readonly renewAtFraction: number;
  /** Largest random fraction of the lifetime by which renewal is brought forward; default 0.1. */
  readonly renewJitterFraction: number;
  /** Directory with Istio plug-in CA files (`ca-cert.pem`, `ca-key.pem`, `root-cert.pem`, `cert-chain.pem`), absolute. */
  readonly caPluginDir?: string;
  /** How workloads' traffic reaches their sidecars: `loopback` (per-workload 127.0.0.x, apps call their sidecar) or `iptables` (capture in network namespaces); default loopback. */
  readonly captureMode: CaptureMode;
  /** What a captured sidecar does with a destination outside the mesh (Istio's outboundTrafficPolicy.mode); default ALLOW_ANY. */
  readonly outboundTrafficPolicy: OutboundTrafficMode;
  /** IPv4 range service VIPs are assigned from when a Service has no spec.clusterIP; default 10.96.0.0/16 (never bound to an interface). */
  readonly serviceCidr: string;
  /** Whether inbound sidecars write a JSON access log of HTTP requests to their Envoy's stdout (the format `authz replay` reads); default false. */
  readonly accessLog: boolean;
  /** This mesh's bundle endpoint, when it serves one. */
  readonly bundleEndpoint?: BundleEndpointSettings;
  /** The foreign trust domains whose identities sidecars accept (each validated against its own bundle). */
  readonly federatesWith: readonly FederatedTrustDomain[];
  /** External authorizers that CUSTOM AuthorizationPolicies name (MeshConfig extensionProviders). */
  readonly extensionProviders: readonly ExtAuthzProvider[];
  /** Where the MeshConfig was written, if one was. */
  readonly origin?: SourceRef;
}

/** The settings used when no MeshConfig is given. */
export const DEFAULT_MESH_SETTINGS: MeshSettings = Object.freeze({
  trustDomain: 'cluster.local',
  trustDomainAliases: Object.freeze([]) as readonly string[],
  domainSuffix: 'cluster.local',
  rootNamespace: 'istio-system',
  certTtlMs: 24 * 3_600_000,
  maxCertTtlMs: 7 * 24 * 3_600_000,
  renewAtFraction: 0.5,
  renewJitterFraction: 0.1,
  captureMode: 'loopback',
  outboundTrafficPolicy: 'ALLOW_ANY',
  serviceCidr: '10.96.0.0/16',
  accessLog: false,
  federatesWith: Object.freeze([]) as readonly FederatedTrustDomain[],
  extensionProviders: Object.freeze([]) as readonly ExtAuthzProvider[],
});

/** Returns complete settings: the defaults overridden by `partial`. */
export function meshSettings(partial: Partial<MeshSettings> = {}): MeshSettings {
  const defined = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined));
  return { ...DEFAULT_MESH_SETTINGS, ...defined };
}
