export {
  sidecarBootstrap,
  XDS_CLUSTER,
  SDS_AGENT_CLUSTER,
  SDS_CLUSTER_METADATA,
  CERT_DIR_METADATA,
  INTERCEPTION_MODE_METADATA,
  CAPTURE_ADMIN_PORT,
} from './sidecar-bootstrap.js';
export type { SidecarBootstrapOptions } from './sidecar-bootstrap.js';
