export { createSvidStore, generateFreshKey, realTimers } from './svid-store.js';
export type { SvidStore, WorkloadCertificate, Timers, FreshKey } from './svid-store.js';
export { renewalTime } from './renewal.js';
export type { RenewalPolicy } from './renewal.js';
export { createServingCredentials } from './serving-credentials.js';
export type { ServingCredentials } from './serving-credentials.js';
export {
  createFileSecrets,
  checkSecretDir,
  removeLeftoverSecretFiles,
  fileAccountKey,
  writeAccountFiles,
  defaultSdsFile,
  CERT_FILES,
} from './file-secrets.js';
export type { FileSecrets, FileAccount } from './file-secrets.js';
export { listenAddressSans } from './serving-names.js';
export type { ListenSans } from './serving-names.js';
