export { edsCluster, clusterEndpoints, routeConfiguration, httpListener } from './builders.js';
export type { HostPort, PrefixRoute } from './builders.js';
