// Security policy: PeerAuthentication, AuthorizationPolicy and RequestAuthentication compiled to
// Envoy config (mTLS modes, RBAC, jwt_authn), and an evaluator of that same compiled config.
export type { PolicyDiagnostic } from './diagnostics.js';
export type { CompiledPeerAuthentication, EffectiveMtlsMode } from './peer-authentication.js';
export { compilePeerAuthentication, mtlsModeFor, DEFAULT_MTLS_MODE } from './peer-authentication.js';
export type { CompiledAuthorization, PolicyFilter, PortProtocol, RbacFilterAction } from './authorization.js';
export { compileAuthorization, rbacPolicyName, parseRbacPolicyName, HTTP_RBAC_FILTER, NETWORK_RBAC_FILTER } from './authorization.js';
export type { CompiledRequestAuthentication, JwksSource } from './request-authentication.js';
export { compileRequestAuthentication, UNUSABLE_JWKS, checkJwks } from './request-authentication.js';
export type { CompiledInboundPolicy } from './inbound.js';
export { compileInboundPolicy } from './inbound.js';
export type { AuthzRequest, Decision, InboundConfig, JwtClaims } from './evaluate.js';
export { evaluate } from './evaluate.js';
export type { PathNormalization, EscapedSlashesAction, NormalizedPath } from './path-normalization.js';
export { INBOUND_HCM_OPTIONS, INBOUND_PATH_NORMALIZATION, normalizeRequestPath, stripHostPort } from './path-normalization.js';
export { JWT_FILTER, JWT_PAYLOAD_KEY } from './matchers.js';
export type { JwksFetcher, IntervalTimers } from './jwks-fetcher.js';
export type { JwksVia } from './jwks-discovery.js';
export { openIdDiscoveryUrl } from './jwks-discovery.js';
export { createJwksFetcher } from './jwks-fetcher.js';
export type { HostLookup, JwksFetchPolicy, JwksTarget } from './jwks-target.js';
export { checkJwksTarget, DEFAULT_JWKS_FETCH_POLICY } from './jwks-target.js';
export { renderFilter } from './render.js';
export { verifyJwt } from './jwt-verify.js';
export { createInboundPolicySource } from './policy-source.js';
export type { InboundPolicyResult, InboundPolicySourceHandle } from './policy-source.js';
export type { RecordedRequest } from './access-log.js';
export { accessLogJsonFormat, parseAccessLogLine } from './access-log.js';
