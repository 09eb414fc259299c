// The mesh domain model: immutable, versioned types with query helpers and no I/O.
export type {
  SourcePosition,
  SourceRef,
  Labels,
  ObjectKind,
  ObjectRef,
  ObjectMeta,
  ServiceAccountRef,
  ServiceAccount,
  ServicePort,
  Service,
  WorkloadEntry,
  MtlsMode,
  PeerAuthentication,
  AuthzAction,
  AuthzSource,
  AuthzOperation,
  AuthzCondition,
  AuthzRule,
  AuthorizationPolicy,
  JwtRule,
  RequestAuthentication,
  Sidecar,
  SidecarHost,
  ServiceEntry,
  ServiceEntryEndpoint,
  ServiceEntryLocation,
  ServiceEntryPort,
  ServiceEntryResolution,
  ClientTls,
  ClientTlsMode,
  LoadBalancerSettings,
  ConnectionPoolSettings,
  OutlierDetectionSettings,
  PortTrafficPolicy,
  TrafficPolicy,
  DestinationSubset,
  DestinationRule,
} from './types.js';
export { TLS_MODE_LABEL } from './types.js';
export type {
  MeshSettings,
  CaptureMode,
  OutboundTrafficMode,
  BundleEndpointSettings,
  FederatedTrustDomain,
  ExtAuthzProvider,
  ExtAuthzBodySettings,
} from './settings.js';
export { DEFAULT_MESH_SETTINGS, meshSettings } from './settings.js';
export { parseDuration, formatDuration } from './duration.js';
export { selectorMatches } from './labels.js';
export type { SelectorIndex } from './selector-index.js';
export { createSelectorIndex } from './selector-index.js';
export type { MeshModel, MeshModelInput, NamespacedName } from './mesh-model.js';
export { createMeshModel, objectKey, workloadPortFor, applicationProtocol } from './mesh-model.js';
export type { ChangeSet, ObjectChange } from './diff.js';
export { diffModels } from './diff.js';
export { positionOf, pathInFile } from './position.js';
export type { PushChange, PushEvent } from './push-change.js';
export { mergeEvents, NO_CHANGE } from './push-change.js';
export { qualifyHost, hostMatchRank, destinationRuleFor } from './destinations.js';
export { entryPortKind, entryServicePort, entriesOf, portsServedBy } from './service-entries.js';
