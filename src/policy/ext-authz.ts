// CUSTOM AuthorizationPolicy → Envoy's ext_authz filter, after Istio's translation
// (pilot/pkg/security/authz/builder): a shadow RBAC filter evaluates the CUSTOM rules without
// enforcing them and writes the matching policy's name into its dynamic metadata
// (`istio_ext_authz_shadow_effective_policy_id`); the ext_authz filter that follows runs only when
// that name carries the `istio-ext-authz` prefix, so only requests the rules match reach the authorizer.
import type { ExtAuthzProvider, MeshModel } from '../model/index.js';
import { ApiVersion, ExtAuthz, packAny, type DeepPartialLike } from '../proto/index.js';
import type { PolicyFilter } from './authorization.js';

/** The Envoy filter name of HTTP external authorization. */
export const EXT_AUTHZ_FILTER = 'envoy.filters.http.ext_authz';
const EXT_AUTHZ_TYPE = 'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';

/** Istio's prefix of the shadow RBAC policy names of CUSTOM rules. */
export const EXT_AUTHZ_POLICY_PREFIX = 'istio-ext-authz-';
/** Istio's shadow stat prefix of the CUSTOM RBAC filter; Envoy prefixes its dynamic metadata keys with it too. */
export const EXT_AUTHZ_SHADOW_STAT_PREFIX = 'istio_ext_authz_';
/** The dynamic metadata key (under envoy.filters.http.rbac) that names the matching CUSTOM rule. */
export const EXT_AUTHZ_EFFECTIVE_POLICY_KEY = `${EXT_AUTHZ_SHADOW_STAT_PREFIX}shadow_effective_policy_id`;

/** Where an authorizer is reached: the outbound cluster of its service port. */
export interface ResolvedProvider {
  readonly provider: ExtAuthzProvider;
  readonly cluster: string;
}

/** Finds the mesh service port (a Service's, or a ServiceEntry host's) a provider names; a reason when there is none a sidecar could call. */
export function resolveProvider(model: MeshModel, provider: ExtAuthzProvider): ResolvedProvider | string {
  const domain = model.settings.domainSuffix;
  const cluster = `outbound|${provider.port}||${provider.service}`;
  // Istio's local authorizer sample declares the authorizer with a ServiceEntry (ext-authz-grpc.local).
  const entry = model.serviceEntries.find((e) => e.hosts.includes(provider.service));
  if (entry) {
    if (!entry.ports.some((p) => p.number === provider.port))
      return `ServiceEntry ${entry.namespace}/${entry.name} has no port ${provider.port}`;
    return { provider, cluster };
  }
  const service = model.services.find((s) => `${s.name}.${s.namespace}.svc.${domain}` === provider.service);
  if (!service)
    return `its service '${provider.service}' is neither a Service of the mesh (<name>.<namespace>.svc.${domain}) nor a ServiceEntry host`;
  if (!service.ports.some((p) => p.port === provider.port))
    return `Service ${service.namespace}/${service.name} has no port ${provider.port}`;
  if (model.workloadsOf(service).length === 0) return `Service ${service.namespace}/${service.name} has no workloads`;
  return { provider, cluster };
}

const seconds = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 });
const exactHeaders = (names: readonly string[]) =>
  names.length > 0 ? { patterns: names.map((n) => ({ exact: n, ignoreCase: true })) } : undefined;

/** The ext_authz filter for one authorizer, enabled only by the CUSTOM shadow RBAC filter's metadata. */
export function extAuthzFilter(r: ResolvedProvider, rbacFilterName: string): PolicyFilter {
  const p = r.provider;
  const config: DeepPartialLike<ExtAuthz> = {
    transportApiVersion: ApiVersion.V3,
    failureModeAllow: p.failOpen,
    statusOnError: { code: p.statusOnError },
    clearRouteCache: p.clearRouteCache,
    ...(p.includeRequestBodyInCheck ? { withRequestBody: p.includeRequestBodyInCheck } : {}),
    filterEnabledMetadata: {
      filter: rbacFilterName,
      path: [{ key: EXT_AUTHZ_EFFECTIVE_POLICY_KEY }],
      value: { stringMatch: { prefix: EXT_AUTHZ_POLICY_PREFIX.slice(0, -1) } },
    },
    ...(p.kind === 'grpc'
      ? { grpcService: { envoyGrpc: { clusterName: r.cluster, authority: p.service }, timeout: seconds(p.timeoutMs) } }
      : {
          httpService: {
            serverUri: { uri: `http://${p.service}`, cluster: r.cluster, timeout: seconds(p.timeoutMs) },
            ...(p.pathPrefix ? { pathPrefix: p.pathPrefix } : {}),
            authorizationRequest: {
              ...(exactHeaders(p.includeRequestHeadersInCheck) ? { allowedHeaders: exactHeaders(p.includeRequestHeadersInCheck) } : {}),
              headersToAdd: Object.entries(p.includeAdditionalHeadersInCheck)
                .sort(([a], [b]) => (a < b ? -1 : 1))
                .map(([key, value]) => ({ key, value })),
            },
            authorizationResponse: {
              ...(exactHeaders(p.headersToUpstreamOnAllow) ? { allowedUpstreamHeaders: exactHeaders(p.headersToUpstreamOnAllow) } : {}),
              ...(exactHeaders(p.headersToDownstreamOnDeny) ? { allowedClientHeaders: exactHeaders(p.headersToDownstreamOnDeny) } : {}),
              ...(exactHeaders(p.headersToDownstreamOnAllow)
                ? { allowedClientHeadersOnSuccess: exactHeaders(p.headersToDownstreamOnAllow) }
                : {}),
            },
          },
        }),
  };
  return { name: EXT_AUTHZ_FILTER, typedConfig: packAny(EXT_AUTHZ_TYPE, ExtAuthz, config) };
}
