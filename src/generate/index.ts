export { edsCluster, clusterEndpoints, routeConfiguration, httpListener } from './builders.js';
export type { HostPort, PrefixRoute } from './builders.js';
export { allowedServerIds, portKind, NO_POLICY, DEFAULT_SDS_FILE, svidElsewhere } from './resources.js';
export type { WorkloadSvid, InboundPolicy, SecretSource } from './resources.js';
export { PushContext, ResourceMemo, memoSet, policyKey } from './context.js';
export type { PushInputs, MeshServicePort } from './context.js';
export {
  GENERATORS,
  secretGenerator,
  clusterGenerator,
  endpointGenerator,
  listenerGenerator,
  routeGenerator,
  generateAll,
} from './generators.js';
export type { ResourceGenerator, NodeView } from './generators.js';
export * from './names.js';
export { secureNamingOf, type SecureNamingEntry } from './secure-naming.js';
export { policyForPort, SYSTEM_CA_BUNDLE } from './traffic-policy.js';
