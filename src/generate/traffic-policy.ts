// A DestinationRule's traffic policy compiled onto an Envoy cluster, after what Istio's
// cluster builder does: load balancer, circuit breakers (connectionPool), outlier detection,
// upstream HTTP options, and the client TLS of modes SIMPLE and MUTUAL (TLS origination).
import type { ClientTls, PortTrafficPolicy, TrafficPolicy } from '../model/index.js';
import {
  type Any,
  Cluster_LbPolicy,
  packAny,
  SubjectAltNameMatcher_SanType,
  UpstreamHttpOptions,
  UPSTREAM_HTTP_OPTIONS_TYPE,
  UpstreamTlsContext,
} from '../proto/index.js';

/** Where TLS origination finds trusted roots when a rule names no caCertificates (Debian's system bundle). */
export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** The settings of one port (and subset): port-level settings override the rule's, field by field, as Istio merges them. */
export function policyForPort(policy: TrafficPolicy | undefined, port: number, subset?: TrafficPolicy): PortTrafficPolicy {
  const merged = (p: TrafficPolicy | undefined): PortTrafficPolicy => ({ ...stripPorts(p), ...(p?.portLevelSettings[port] ?? {}) });
  return { ...merged(policy), ...(subset ? merged(subset) : {}) };
}

function stripPorts(p: TrafficPolicy | undefined): PortTrafficPolicy {
  if (!p) return {};
  const { portLevelSettings: _ignored, ...rest } = p;
  return rest;
}

/** Cluster fields in the shape Cluster.fromPartial takes (normalized there). */
type ClusterFields = Record<string, unknown>;

const duration = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });

const LB: Readonly<Record<string, Cluster_LbPolicy>> = {
  ROUND_ROBIN: Cluster_LbPolicy.ROUND_ROBIN,
  LEAST_REQUEST: Cluster_LbPolicy.LEAST_REQUEST,
  RANDOM: Cluster_LbPolicy.RANDOM,
};

/** The cluster fields a policy sets (load balancer, circuit breakers, connect timeout, outlier detection, upstream HTTP options), to merge into Cluster.fromPartial. */
export function trafficPolicyFields(p: PortTrafficPolicy, http: boolean): ClusterFields {
  const msg: ClusterFields = {};
  if (p.loadBalancer) msg.lbPolicy = LB[p.loadBalancer.simple] ?? Cluster_LbPolicy.ROUND_ROBIN;
  const cp = p.connectionPool;
  if (cp) {
    if (cp.connectTimeoutMs !== undefined) msg.connectTimeout = duration(cp.connectTimeoutMs);
    const t = {
      ...(cp.maxConnections !== undefined ? { maxConnections: cp.maxConnections } : {}),
      ...(cp.http1MaxPendingRequests !== undefined ? { maxPendingRequests: cp.http1MaxPendingRequests } : {}),
      ...(cp.http2MaxRequests !== undefined ? { maxRequests: cp.http2MaxRequests } : {}),
      ...(cp.maxRetries !== undefined ? { maxRetries: cp.maxRetries } : {}),
    };
    if (Object.keys(t).length > 0) msg.circuitBreakers = { thresholds: [{ priority: 0, ...t }] };
    if (http && (cp.idleTimeoutMs !== undefined || cp.maxRequestsPerConnection !== undefined)) {
      msg.typedExtensionProtocolOptions = {
        [UPSTREAM_HTTP_OPTIONS_TYPE]: packAny(UPSTREAM_HTTP_OPTIONS_TYPE, UpstreamHttpOptions, {
          ...(cp.idleTimeoutMs !== undefined ? { idleTimeoutMs: cp.idleTimeoutMs } : {}),
          ...(cp.maxRequestsPerConnection !== undefined ? { maxRequestsPerConnection: cp.maxRequestsPerConnection } : {}),
        }),
      };
    }
  }
  const od = p.outlierDetection;
  if (od) {
    // As Istio: an error kind that is not set is not enforced (Envoy would enforce 5xx by default).
    msg.outlierDetection = {
      ...(od.consecutive5xxErrors !== undefined ? { consecutive5xx: od.consecutive5xxErrors } : {}),
      enforcingConsecutive5xx: od.consecutive5xxErrors ? 100 : 0,
      ...(od.consecutiveGatewayErrors !== undefined ? { consecutiveGatewayFailure: od.consecutiveGatewayErrors } : {}),
      enforcingConsecutiveGatewayFailure: od.consecutiveGatewayErrors ? 100 : 0,
      enforcingSuccessRate: 0,
      ...(od.intervalMs !== undefined ? { interval: duration(od.intervalMs) } : {}),
      ...(od.baseEjectionTimeMs !== undefined ? { baseEjectionTime: duration(od.baseEjectionTimeMs) } : {}),
      ...(od.maxEjectionPercent !== undefined ? { maxEjectionPercent: od.maxEjectionPercent } : {}),
    };
    if (od.minHealthPercent !== undefined) msg.commonLbConfig = { healthyPanicThreshold: { value: od.minHealthPercent } };
  }
  return msg;
}

// A SAN written as a URI (spiffe://...) is matched as a URI SAN, anything else as a DNS SAN.
const sanMatcher = (san: string) => ({
  sanType: san.includes('://') ? SubjectAltNameMatcher_SanType.URI : SubjectAltNameMatcher_SanType.DNS,
  matcher: { exact: san },
});

/**
 * The transport socket of TLS origination (modes SIMPLE and MUTUAL): SNI (the rule's, else the
 * host), the server checked against `caCertificates` (else the system roots) and its SANs (the
 * rule's, else the host name), and for MUTUAL the client certificate and key, all read by Envoy
 * from the files the rule names.
 */
export function originationSocket(tls: ClientTls, host: string): { name: string; typedConfig: Any } {
  const sans = tls.subjectAltNames.length > 0 ? tls.subjectAltNames : [host];
  return {
    name: 'envoy.transport_sockets.tls',
    typedConfig: packAny('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', UpstreamTlsContext, {
      sni: tls.sni ?? host,
      commonTlsContext: {
        ...(tls.mode === 'MUTUAL' && tls.clientCertificate && tls.privateKey
          ? { tlsCertificates: [{ certificateChain: { filename: tls.clientCertificate }, privateKey: { filename: tls.privateKey } }] }
          : {}),
        ...(tls.insecureSkipVerify
          ? {}
          : {
              validationContext: {
                trustedCa: { filename: tls.caCertificates ?? SYSTEM_CA_BUNDLE },
                matchTypedSubjectAltNames: sans.map(sanMatcher),
              },
            }),
      },
    }),
  };
}
