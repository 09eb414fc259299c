// Identities no workload may hold. The control plane serves xDS with an SVID for
// `spiffe://<td>/ns/<rootNamespace>/sa/meshpilot`, and sidecars and node agents trust that
// name as the control plane: a workload certificate or token for it would be a forged control plane.
import { pathOf, type SpiffeId } from './spiffe-id.js';

/** The service account the control plane runs as, in the mesh's root namespace. */
export const CONTROL_PLANE_SERVICE_ACCOUNT = 'meshpilot';

/** The root namespace when the mesh config names none (Istio's default, as in MeshSettings). */
export const DEFAULT_ROOT_NAMESPACE = 'istio-system';

/** The mesh settings that decide which identities are reserved. */
export interface ReservedIdentitySettings {
  readonly rootNamespace: string;
}

// Service accounts reserved in the root namespace, with why: one entry per reserved name.
const RESERVED_IN_ROOT_NAMESPACE: Readonly<Record<string, string>> = {
  [CONTROL_PLANE_SERVICE_ACCOUNT]: 'the control plane runs as it; every sidecar trusts it as the control plane',
};

/** Why a namespace and service account are reserved for the control plane, or undefined when a workload may run as them. */
export function reservedServiceAccount(namespace: string, serviceAccount: string, settings: ReservedIdentitySettings): string | undefined {
  if (namespace !== settings.rootNamespace || !Object.hasOwn(RESERVED_IN_ROOT_NAMESPACE, serviceAccount)) return undefined;
  return `${namespace}/${serviceAccount} is reserved: ${RESERVED_IN_ROOT_NAMESPACE[serviceAccount]}`;
}

/** True when a SPIFFE ID (in any trust domain) names a reserved service account. */
export function isReservedIdentity(id: SpiffeId, settings: ReservedIdentitySettings): boolean {
  const m = /^\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(pathOf(id));
  return m !== null && reservedServiceAccount(m[1]!, m[2]!, settings) !== undefined;
}
