export { sidecarBootstrap, XDS_CLUSTER, SDS_AGENT_CLUSTER, SDS_CLUSTER_METADATA } from './sidecar-bootstrap.js';
export type { SidecarBootstrapOptions } from './sidecar-bootstrap.js';
