export { createLogger, createRecordingLogger, defaultLogFormat, LOG_FORMATS, silentLogger, teeLogger } from './logger.js';
export type { Logger, LogFields, LogFormat, RecordedLine } from './logger.js';
export { createMetrics, proxyVersion } from './metrics.js';
export type { Metrics, CaStoreStatus, CertificateSource, Validity } from './metrics.js';
export { createProxyStatusTracker } from './proxy-status.js';
export type {
  ProxyStatusTracker,
  ProxyStatus,
  TypeStatus,
  SyncStatus,
  NackRecord,
  RejectedResource,
  ResourceOrigin,
  OriginResolver,
  TrackedProxy,
} from './proxy-status.js';
export { createProxyReporter } from './proxy-report.js';
export type { ProxyReporter, ProxyReport, AdmittedProxyInfo, SvidInfo } from './proxy-report.js';
export { resolveOrigin } from './resource-origin.js';
export { createConvergenceTimer } from './convergence.js';
export type { ConvergenceTimer } from './convergence.js';
export { proveRevocation, secretsViewOf } from './revocation-proof.js';
export type { RevocationProof, SecretsView, Unacknowledged, Sleep } from './revocation-proof.js';
export type { MtlsPair, MtlsReportDeps, PushedCluster, ReportClient, ReportServer, ReportService } from './mtls-report.js';
export { buildMtlsReport, decodeClusterTls, formatMtlsReport } from './mtls-report.js';
export type { RolloutStage } from './root-rollout.js';
export { awaitRootRollout, leafSignedBy } from './root-rollout.js';
