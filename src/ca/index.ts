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
export { createEphemeralCa, createPluginCa, createSelfSignedCa, openCa } from './backends.js';
export type { CaOptions } from './backends.js';
export { describeKey, encodeP256KeyPair, generateKeyPair } from './keys.js';
export type { KeyDescription, KeyKind, KeyPair } from './keys.js';
export { MAX_CSR_BYTES, parseCsr } from './csr.js';
export type { ParsedCsr } from './csr.js';
export { PLUGIN_FILES } from './material.js';
export { removeLeftoverTempFiles, STATE_FILE, writeFileAtomic } from './state-store.js';
export { acquireStateLock, STATE_LOCK_FILE } from './state-lock.js';
export type { StateLock, StateLockOptions } from './state-lock.js';
