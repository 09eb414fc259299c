// Capture mode's Envoy resources, Istio's shapes: iptables sends every outbound TCP connection to
// 15001 and every inbound one to 15006; the `original_dst` listener filter restores the address
// the connection was really for, and filter chains pick what to do by that address and port.
// Builders are pure; PushContext shares the mesh-wide ones, the listener generator memoizes the
// per-proxy inbound listener.
import type { OutboundTrafficMode } from '../model/index.js';
import {
  type Any,
  ApiVersion,
  Cluster,
  Cluster_DiscoveryType,
  Cluster_LbPolicy,
  FilterChain,
  HttpConnectionManager,
  Listener,
  packAny,
  TcpProxy,
  TypeUrl,
} from '../proto/index.js';
import { encodedResource, type EncodedResource } from '../snapshot/index.js';
import {
  BLACKHOLE_CLUSTER,
  CAPTURE_INBOUND_PORT,
  CAPTURE_OUTBOUND_PORT,
  captureRouteName,
  INBOUND_PASSTHROUGH_SOURCE,
  PASSTHROUGH_CLUSTER,
  VIRTUAL_INBOUND_LISTENER,
  VIRTUAL_OUTBOUND_LISTENER,
} from './names.js';
import {
  addr,
  inboundFilterChains,
  inboundRefs,
  routerFilter,
  tlsInspectorFilter,
  type InboundChainSpec,
  type SecretSource,
} from './resources.js';

const ads = { ads: {}, resourceApiVersion: ApiVersion.V3 };

// The listener filter is an empty message with no generated type here: an Any with no bytes is its encoding.
const originalDstFilter = (): { name: string; typedConfig: Any } => ({
  name: 'envoy.filters.listener.original_dst',
  typedConfig: { typeUrl: 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst', value: Buffer.alloc(0) },
});

const tcpProxy = (statPrefix: string, cluster: string) => ({
  name: 'envoy.filters.network.tcp_proxy',
  typedConfig: packAny('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', TcpProxy, { statPrefix, cluster }),
});

/** Envoy splits stat names at dots, so hosts in stat prefixes have them replaced. */
const statSafe = (s: string): string => s.replace(/[.|]/g, '_');

/** One outbound filter chain of the virtual outbound listener: an HTTP port over all its VIPs, or one TCP service port over its VIPs (a ServiceEntry may have several addresses). */
export type OutboundChainSpec =
  | { readonly kind: 'http'; readonly port: number; readonly vips: readonly string[] }
  | { readonly kind: 'tcp'; readonly port: number; readonly vips: readonly string[]; readonly host: string; readonly cluster: string };

const vipRanges = (vips: readonly string[]) => vips.map((v) => ({ addressPrefix: v, prefixLen: 32 }));

function outboundChain(spec: OutboundChainSpec): FilterChain {
  if (spec.kind === 'tcp') {
    return FilterChain.fromPartial({
      name: `outbound|${spec.port}||${spec.host}`,
      filterChainMatch: { prefixRanges: vipRanges(spec.vips), destinationPort: spec.port },
      filters: [tcpProxy(`outbound_${spec.port}_${statSafe(spec.host)}`, spec.cluster)],
    });
  }
  // Every service on this port shares one chain and one route configuration named by the port
  // (Istio's RDS name); the Host header picks the service, and the VIP is among its domains.
  const hcm = packAny('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', HttpConnectionManager, {
    statPrefix: `outbound_${spec.port}`,
    rds: { routeConfigName: captureRouteName(spec.port), configSource: ads },
    httpFilters: [routerFilter()],
  });
  return FilterChain.fromPartial({
    name: `outbound_http_${spec.port}`,
    filterChainMatch: { prefixRanges: vipRanges(spec.vips), destinationPort: spec.port },
    filters: [{ name: 'envoy.filters.network.http_connection_manager', typedConfig: hcm }],
  });
}

/**
 * The virtual outbound listener on 15001: one chain per HTTP port (matched by the VIPs on that port)
 * and per TCP VIP:port, and a default chain for every other destination: passed through to where
 * the app was going under ALLOW_ANY, sent to the black hole under REGISTRY_ONLY (Istio's
 * outboundTrafficPolicy, https://istio.io/latest/docs/tasks/traffic-management/egress/egress-control/).
 */
export function virtualOutboundListener(chains: readonly OutboundChainSpec[], mode: OutboundTrafficMode): EncodedResource {
  const fallback = mode === 'ALLOW_ANY' ? PASSTHROUGH_CLUSTER : BLACKHOLE_CLUSTER;
  const msg = Listener.fromPartial({
    name: VIRTUAL_OUTBOUND_LISTENER,
    address: addr('0.0.0.0', CAPTURE_OUTBOUND_PORT),
    listenerFilters: [originalDstFilter()],
    filterChains: chains.map(outboundChain),
    defaultFilterChain: { name: `${fallback}FilterChain`, filters: [tcpProxy(fallback, fallback)] },
  });
  const refs = chains.map((c) =>
    c.kind === 'http'
      ? { typeUrl: TypeUrl.RouteConfiguration, name: captureRouteName(c.port) }
      : { typeUrl: TypeUrl.Cluster, name: c.cluster },
  );
  return encodedResource(TypeUrl.Listener, VIRTUAL_OUTBOUND_LISTENER, Listener, msg, [
    ...refs,
    { typeUrl: TypeUrl.Cluster, name: fallback },
  ]);
}

/**
 * The virtual inbound listener on 15006 of one proxy: per service port, the chains of its
 * PeerAuthentication mode and policy matched by destination port. Connections to any other port
 * match no chain and are closed. Undefined when the proxy serves no port (Envoy refuses a listener
 * without chains).
 */
export function virtualInboundListener(ports: readonly InboundChainSpec[], source: SecretSource): EncodedResource | undefined {
  if (ports.length === 0) return undefined;
  const filterChains = ports.flatMap((p) => inboundFilterChains(p, source, { destinationPort: p.port }));
  const msg = Listener.fromPartial({
    name: VIRTUAL_INBOUND_LISTENER,
    address: addr('0.0.0.0', CAPTURE_INBOUND_PORT),
    listenerFilters: [originalDstFilter(), ...(ports.some((p) => p.policy.mtlsMode === 'PERMISSIVE') ? [tlsInspectorFilter()] : [])],
    filterChains,
  });
  const refs = new Map(ports.flatMap((p) => inboundRefs(p.cluster, p.policy, source)).map((r) => [`${r.typeUrl}|${r.name}`, r]));
  return encodedResource(TypeUrl.Listener, VIRTUAL_INBOUND_LISTENER, Listener, msg, [...refs.values()]);
}

/**
 * The cluster to the local app on `appPort` in capture mode: the original destination (the
 * workload's own address) with the port set to the app's, from 127.0.0.6 so that capture lets it
 * through instead of sending it back to 15006 (Envoy's OriginalDstLbConfig.upstream_port_override).
 */
export function captureInboundCluster(name: string, appPort: number): EncodedResource {
  const msg = Cluster.fromPartial({
    name,
    type: Cluster_DiscoveryType.ORIGINAL_DST,
    lbPolicy: Cluster_LbPolicy.CLUSTER_PROVIDED,
    connectTimeout: { seconds: 1, nanos: 0 },
    originalDstLbConfig: { upstreamPortOverride: appPort },
    upstreamBindConfig: { sourceAddress: { address: INBOUND_PASSTHROUGH_SOURCE, portValue: 0 } },
  });
  return encodedResource(TypeUrl.Cluster, name, Cluster, msg);
}

/** Istio's PassthroughCluster: connections go on to their original destination. */
export function passthroughCluster(): EncodedResource {
  const msg = Cluster.fromPartial({
    name: PASSTHROUGH_CLUSTER,
    type: Cluster_DiscoveryType.ORIGINAL_DST,
    lbPolicy: Cluster_LbPolicy.CLUSTER_PROVIDED,
    connectTimeout: { seconds: 1, nanos: 0 },
  });
  return encodedResource(TypeUrl.Cluster, PASSTHROUGH_CLUSTER, Cluster, msg);
}

/** Istio's BlackHoleCluster: a static cluster with no endpoints, so every connection to it fails. */
export function blackHoleCluster(): EncodedResource {
  const msg = Cluster.fromPartial({
    name: BLACKHOLE_CLUSTER,
    type: Cluster_DiscoveryType.STATIC,
    connectTimeout: { seconds: 1, nanos: 0 },
  });
  return encodedResource(TypeUrl.Cluster, BLACKHOLE_CLUSTER, Cluster, msg);
}
