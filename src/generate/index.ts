export { edsCluster, clusterEndpoints, routeConfiguration, httpListener } from './builders.js';
export type { HostPort, PrefixRoute } from './builders.js';
export { generateSidecar, allowedServerIds, portKind, NO_POLICY } from './sidecar.js';
export type { PushContext, WorkloadSvid, InboundPolicy, SecretSource } from './sidecar.js';
export * from './names.js';
