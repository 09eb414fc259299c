/** The xDS resource type URLs meshpilot serves (Envoy v3 API). */
export const TypeUrl = {
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  Secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;

/** One of the type URLs in `TypeUrl`. */
export type TypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

const known: ReadonlySet<string> = new Set(Object.values(TypeUrl));

/** Tells whether a type URL from the wire is one meshpilot serves. */
export function isKnownTypeUrl(s: string): s is TypeUrl {
  return known.has(s);
}

/** Short names for logs and metrics (`lds`, `rds`, `cds`, `eds`, `sds`). */
export const typeShortName: Readonly<Record<TypeUrl, string>> = {
  [TypeUrl.Listener]: 'lds',
  [TypeUrl.RouteConfiguration]: 'rds',
  [TypeUrl.Cluster]: 'cds',
  [TypeUrl.ClusterLoadAssignment]: 'eds',
  [TypeUrl.Secret]: 'sds',
};

/**
 * The order in which types are pushed on an ADS stream when several change at once:
 * clusters before their endpoints and listeners before their routes, so that Envoy
 * never holds a reference to something it has not been sent yet ("make before break",
 * xDS protocol, "eventual consistency considerations"). Secrets go first because
 * clusters and listeners that use them wait for them while warming.
 */
export const pushOrder: readonly TypeUrl[] = [
  TypeUrl.Secret,
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
];
