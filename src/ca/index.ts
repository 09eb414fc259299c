export type {
  CaChange,
  CaError,
  CaErrorKind,
  CaStatus,
  CertificateAuthority,
  CertificateSummary,
  IssuedCrl,
  IssuedSvid,
  RevokedCertificate,
  RotationPhase,
  SignSvidRequest,
  TrustBundle,
} from './types.js';
export { createEphemeralCa, createPluginCa, createSelfSignedCa, openCa, openSharedCa } from './backends.js';
export type { CaOptions, SharedCa, SharedCaOptions } from './backends.js';
export { describeKey, encodeP256KeyPair, generateKeyPair } from './keys.js';
export type { KeyDescription, KeyKind, KeyPair } from './keys.js';
export { MAX_CSR_BYTES, parseCsr } from './csr.js';
export type { ParsedCsr } from './csr.js';
export { PLUGIN_FILES } from './material.js';
export { removeLeftoverTempFiles, STATE_FILE, writeFileAtomic } from './state-store.js';
export { acquireStateLock, STATE_LOCK_FILE } from './state-lock.js';
export type { StateLock, StateLockOptions } from './state-lock.js';
export { generatePkcs11Key, importPkcs11Key, pkcs11KeyExists, readPinFile } from './pkcs11-signer.js';
export type { Pkcs11KeyRef } from './pkcs11-signer.js';
export { caError } from './types.js';
export type { IssuanceRecord, RevokedRecord } from './state-store.js';
export { createMemoryBacking, createMemoryCaStateStore, isIssuanceRecord, parseCaRecord } from './shared-store.js';
export type {
  CaRecord,
  CaStateStore,
  CasOutcome,
  MemoryBacking,
  RootMaterial,
  StoreHealth,
  StoreProblem,
  Versioned,
} from './shared-store.js';
export { createDirCaStateStore, TOKEN_KEY_FILE_NAME } from './dir-shared-store.js';
export { createMemoryRotationBacking, createMemoryRotationStore, parseAckReport, parseRotationRecord } from './rotation-record.js';
export type { AckReport, MemoryRotationBacking, RotationRecord, RotationStep, RotationStore } from './rotation-record.js';
export { createRotationCoordinator } from './rotation-coordinator.js';
export type { RotatingCa, RotationCoordinator, RotationCoordinatorDeps, RotationView } from './rotation-coordinator.js';
