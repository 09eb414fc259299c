// The whole inbound policy of one workload port: jwt_authn, then RBAC (HTTP), or network RBAC (TCP),
// and the port's mTLS mode. What the sidecar generator puts in front of the router or tcp_proxy.
import type { MeshModel, WorkloadEntry } from '../model/index.js';
import { compileAuthorization, denyAllFilter, type PolicyFilter, type PortProtocol } from './authorization.js';
import type { PolicyDiagnostic } from './diagnostics.js';
import type { InboundConfig } from './evaluate.js';
import { compilePeerAuthentication, mtlsModeFor, type EffectiveMtlsMode } from './peer-authentication.js';
import { compileRequestAuthentication, type JwksSource } from './request-authentication.js';

/** The compiled inbound policy of a workload port: filters in chain order, its mTLS mode, and every problem found. */
export interface CompiledInboundPolicy extends InboundConfig {
  readonly port: number;
  readonly mtlsMode: EffectiveMtlsMode;
  readonly httpFilters: readonly PolicyFilter[];
  readonly networkFilters: readonly PolicyFilter[];
  readonly diagnostics: readonly PolicyDiagnostic[];
}

/**
 * Compiles every policy that applies to one workload port (`port` is the workload's port, as
 * PeerAuthentication's portLevelMtls counts them). jwt_authn runs before RBAC so RBAC can read the
 * verified claims; on TCP ports only network RBAC applies. A compiler bug denies, never allows.
 */
export function compileInboundPolicy(
  model: MeshModel,
  workload: WorkloadEntry,
  port: number,
  protocol: PortProtocol,
  fetchJwks: JwksSource,
): CompiledInboundPolicy {
  const pa = compilePeerAuthentication(model, workload);
  const mtlsMode = mtlsModeFor(pa, port);
  try {
    const authz = compileAuthorization(model, workload, protocol);
    const jwt = protocol === 'http' ? compileRequestAuthentication(model, workload, fetchJwks) : undefined;
    return {
      protocol,
      port,
      mtlsMode,
      httpFilters: protocol === 'http' ? [...(jwt?.httpFilter ? [jwt.httpFilter] : []), ...authz.httpFilters] : [],
      networkFilters: authz.networkFilters,
      diagnostics: [...pa.diagnostics, ...(jwt?.diagnostics ?? []), ...authz.diagnostics],
    };
  } catch (e) {
    const filter = denyAllFilter(protocol, 'internal-error');
    return {
      protocol,
      port,
      mtlsMode,
      httpFilters: protocol === 'http' ? [filter] : [],
      networkFilters: protocol === 'tcp' ? [filter] : [],
      diagnostics: [
        ...pa.diagnostics,
        {
          severity: 'error',
          object: `WorkloadEntry ${workload.namespace}/${workload.name}`,
          path: '',
          message: `internal error compiling policies (${(e as Error).message}): denying every request`,
        },
      ],
    };
  }
}
