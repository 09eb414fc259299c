// Small, typed builders for the Envoy resources meshpilot generates. They fill in the
// fields Envoy requires so that generators read as "what", not "how".
import {
  ApiVersion,
  Cluster,
  Cluster_DiscoveryType,
  ClusterLoadAssignment,
  HttpConnectionManager,
  Listener,
  packAny,
  RouteConfiguration,
  Router,
  TypeUrl,
} from '../proto/index.js';
import { encodedResource, type EncodedResource } from '../snapshot/index.js';

/** A host and port Envoy connects to or listens on. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

const socketAddress = (a: HostPort) => ({ socketAddress: { address: a.host, portValue: a.port } });
const seconds = (s: number) => ({ seconds: Math.floor(s), nanos: Math.round((s % 1) * 1e9) });

/** A cluster whose endpoints come over EDS (ADS), by the cluster's own name. */
export function edsCluster(name: string, opts: { connectTimeoutS?: number } = {}): EncodedResource {
  const msg = Cluster.fromPartial({
    name,
    type: Cluster_DiscoveryType.EDS,
    connectTimeout: seconds(opts.connectTimeoutS ?? 1),
    edsClusterConfig: { edsConfig: { ads: {}, resourceApiVersion: ApiVersion.V3 } },
  });
  return encodedResource(TypeUrl.Cluster, name, Cluster, msg, [{ typeUrl: TypeUrl.ClusterLoadAssignment, name }]);
}

/** The endpoints of one cluster. */
export function clusterEndpoints(clusterName: string, endpoints: readonly HostPort[]): EncodedResource {
  const msg = ClusterLoadAssignment.fromPartial({
    clusterName,
    endpoints: [{ lbEndpoints: endpoints.map((e) => ({ endpoint: { address: socketAddress(e) } })) }],
  });
  return encodedResource(TypeUrl.ClusterLoadAssignment, clusterName, ClusterLoadAssignment, msg);
}

/** One route: a path prefix to a cluster. */
export interface PrefixRoute {
  readonly prefix: string;
  readonly cluster: string;
}

/** A route configuration with one virtual host that matches every domain. */
export function routeConfiguration(name: string, routes: readonly PrefixRoute[]): EncodedResource {
  const msg = RouteConfiguration.fromPartial({
    name,
    virtualHosts: [
      {
        name: `${name}-all`,
        domains: ['*'],
        routes: routes.map((r) => ({ match: { prefix: r.prefix }, route: { cluster: r.cluster } })),
      },
    ],
  });
  const refs = [...new Set(routes.map((r) => r.cluster))].map((c) => ({ typeUrl: TypeUrl.Cluster, name: c }));
  return encodedResource(TypeUrl.RouteConfiguration, name, RouteConfiguration, msg, refs);
}

/** A plaintext HTTP listener whose routes come over RDS (ADS). */
export function httpListener(name: string, address: HostPort, routeConfigName: string): EncodedResource {
  const hcm = packAny('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', HttpConnectionManager, {
    statPrefix: name,
    rds: { routeConfigName, configSource: { ads: {}, resourceApiVersion: ApiVersion.V3 } },
    httpFilters: [
      { name: 'envoy.filters.http.router', typedConfig: packAny('envoy.extensions.filters.http.router.v3.Router', Router, {}) },
    ],
  });
  const msg = Listener.fromPartial({
    name,
    address: socketAddress(address),
    filterChains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typedConfig: hcm }] }],
  });
  return encodedResource(TypeUrl.Listener, name, Listener, msg, [{ typeUrl: TypeUrl.RouteConfiguration, name: routeConfigName }]);
}
