export {
  DEFAULT_TRUST_DOMAIN,
  MAX_SPIFFE_ID_BYTES,
  MAX_TRUST_DOMAIN_BYTES,
  mustSpiffeId,
  mustTrustDomain,
  parseSpiffeId,
  parseTrustDomain,
  parseWorkloadId,
  pathOf,
  trustDomainOf,
  workloadId,
} from './spiffe-id.js';
export type { SpiffeId, SpiffeIdError, SpiffeIdRule, TrustDomain, WorkloadIdentity } from './spiffe-id.js';
export { checkDns1123Label, checkDns1123Subdomain } from './kubernetes-names.js';
export { CONTROL_PLANE_SERVICE_ACCOUNT, DEFAULT_ROOT_NAMESPACE, isReservedIdentity, reservedServiceAccount } from './reserved.js';
export type { ReservedIdentitySettings } from './reserved.js';
