// The generated Envoy message types the rest of meshpilot builds with. This is the
// only place that imports generated/, so a regeneration touches one module.
export { Filter, FilterChain, FilterChainMatch, ListenerFilter } from '../../generated/envoy/config/listener/v3/listener_components.js';
export { Listener } from '../../generated/envoy/config/listener/v3/listener.js';
export { RouteConfiguration } from '../../generated/envoy/config/route/v3/route.js';
export { Cluster, Cluster_DiscoveryType, Cluster_LbPolicy } from '../../generated/envoy/config/cluster/v3/cluster.js';
export { ClusterLoadAssignment } from '../../generated/envoy/config/endpoint/v3/endpoint.js';
export { Secret } from '../../generated/envoy/extensions/transport_sockets/tls/v3/secret.js';
export { UpstreamTlsContext, DownstreamTlsContext } from '../../generated/envoy/extensions/transport_sockets/tls/v3/tls.js';
export { SPIFFECertValidatorConfig } from '../../generated/envoy/extensions/transport_sockets/tls/v3/tls_spiffe_validator_config.js';
export { HttpConnectionManager } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
export { Router } from '../../generated/envoy/extensions/filters/http/router/v3/router.js';
export { TcpProxy } from '../../generated/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.js';
export {
  DiscoveryRequest,
  DiscoveryResponse,
  DeltaDiscoveryRequest,
  DeltaDiscoveryResponse,
} from '../../generated/envoy/service/discovery/v3/discovery.js';
export { Node } from '../../generated/envoy/config/core/v3/base.js';
export { Any } from '../../generated/google/protobuf/any.js';
export { AggregatedDiscoveryServiceClient } from '../../generated/envoy/service/discovery/v3/ads.js';
export { SecretDiscoveryServiceClient } from '../../generated/envoy/service/secret/v3/sds.js';
export { ListenerDiscoveryServiceClient } from '../../generated/envoy/service/listener/v3/lds.js';
export { ClusterDiscoveryServiceClient } from '../../generated/envoy/service/cluster/v3/cds.js';
export { ApiVersion } from '../../generated/envoy/config/core/v3/config_source.js';
export { HttpConnectionManager_ForwardClientCertDetails } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
export { SubjectAltNameMatcher_SanType } from '../../generated/envoy/extensions/transport_sockets/tls/v3/common.js';
export { TlsInspector } from '../../generated/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.js';
export { RBAC as HttpRbac } from '../../generated/envoy/extensions/filters/http/rbac/v3/rbac.js';
export { RBAC as NetworkRbac } from '../../generated/envoy/extensions/filters/network/rbac/v3/rbac.js';
export { JwtAuthentication } from '../../generated/envoy/extensions/filters/http/jwt_authn/v3/config.js';
export {
  RBAC as RbacConfig,
  RBAC_Action as RbacAction,
  Policy as RbacPolicy,
  Permission as RbacPermission,
  Principal as RbacPrincipal,
} from '../../generated/envoy/config/rbac/v3/rbac.js';
export type { StringMatcher } from '../../generated/envoy/type/matcher/v3/string.js';
export type { MetadataMatcher } from '../../generated/envoy/type/matcher/v3/metadata.js';
export type { ValueMatcher } from '../../generated/envoy/type/matcher/v3/value.js';
export type { HeaderMatcher } from '../../generated/envoy/config/route/v3/route_components.js';
export type { CidrRange } from '../../generated/envoy/config/core/v3/address.js';
export { JwtProvider, JwtRequirement } from '../../generated/envoy/extensions/filters/http/jwt_authn/v3/config.js';
export { HttpConnectionManager_PathWithEscapedSlashesAction } from '../../generated/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
export {
  IstioCertificateRequest,
  IstioCertificateResponse,
  IstioCertificateServiceClient,
  IstioCertificateServiceService,
} from '../../generated/istio/v1/auth/ca.js';
export { ExtAuthz } from '../../generated/envoy/extensions/filters/http/ext_authz/v3/ext_authz.js';
export {
  AuthorizationService as ExtAuthzGrpcService,
  CheckRequest as ExtAuthzCheckRequest,
  CheckResponse as ExtAuthzCheckResponse,
} from '../../generated/envoy/service/auth/v3/external_auth.js';
export { HttpProtocolOptions } from '../../generated/envoy/extensions/upstreams/http/v3/http_protocol_options.js';
export { Cluster_DnsLookupFamily } from '../../generated/envoy/config/cluster/v3/cluster.js';
