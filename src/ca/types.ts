import type { KeyObject } from 'node:crypto';
import type { Result } from '../lib/index.js';
import type { SpiffeId, TrustDomain } from '../identity/index.js';

/** Why the CA refused: a closed union so that the edges (gRPC, CLI) can map each kind. */
export type CaErrorKind =
  'not-ready' | 'bad-request' | 'bad-csr' | 'ttl-too-long' | 'wrong-trust-domain' | 'unknown-serial' | 'bad-state' | 'bad-material' | 'io';

/** A CA failure: its kind, a message naming the problem and, for material and state errors, the file. */
export interface CaError {
  readonly kind: CaErrorKind;
  readonly message: string;
  readonly file?: string;
}

/** Builds a CaError result value. */
export const caError = (kind: CaErrorKind, message: string, file?: string): CaError =>
  file === undefined ? { kind, message } : { kind, message, file };

/** A request to sign an SVID for a public key. */
export interface SignSvidRequest {
  readonly spiffeId: SpiffeId;
  readonly publicKey: KeyObject;
  /**
   * The same key's SubjectPublicKeyInfo DER, when the caller already has it (a parsed CSR does):
   * it saves exporting the key again on the hot path. It must encode `publicKey`.
   */
  readonly spkiDer?: Uint8Array;
  /** Requested lifetime; the CA default (24 h) when absent; above the configured maximum is `ttl-too-long`. */
  readonly ttlMs?: number;
  /** DNS SANs, only for certificates that need them (e.g. the control plane's serving certificate). */
  readonly dnsNames?: readonly string[];
  /** IP address SANs (IPv4 or IPv6 text), only for certificates that need them (the control plane's, for clients that dial an address). */
  readonly ipAddresses?: readonly string[];
}

/** A signed X.509-SVID and the chain a peer needs to verify it. */
export interface IssuedSvid {
  readonly spiffeId: SpiffeId;
  readonly certificateDer: Uint8Array;
  readonly certificatePem: string;
  /** Leaf first, then intermediates, up to but excluding the root. */
  readonly chainPem: readonly string[];
  /** Lowercase hex, no leading zeros. */
  readonly serialHex: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

/** The roots a peer trusts; during a root rotation both the old and the new root. */
export interface TrustBundle {
  readonly rootsPem: readonly string[];
  /** All roots concatenated (Istio's root-cert.pem, Envoy's trusted_ca). */
  readonly pem: string;
  /** Content hash: unchanged bundle, unchanged version. */
  readonly version: string;
}

/** A signed CRL (v2) of one issuing CA. */
export interface IssuedCrl {
  /** Subject of the issuing CA, for display. */
  readonly issuer: string;
  readonly der: Uint8Array;
  readonly pem: string;
  readonly thisUpdate: number;
  readonly nextUpdate: number;
  readonly crlNumber: number;
  readonly revokedSerials: readonly string[];
}

/** One revoked certificate, as recorded. */
export interface RevokedCertificate {
  readonly serialHex: string;
  readonly spiffeId: string;
  readonly revokedAt: number;
  readonly notAfter: number;
}

/** A short description of a CA certificate. */
export interface CertificateSummary {
  readonly subject: string;
  readonly serialHex: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly fingerprint256: string;
  readonly pem: string;
}

/** Where a root rotation stands: none, a new root prepared (in the bundle, not signing), or activated (signing). */
export type RotationPhase = 'none' | 'prepared' | 'activated';

/** The CA's state, for `meshpilot ca show` and debug endpoints. */
export interface CaStatus {
  readonly trustDomain: TrustDomain;
  readonly mode: 'self-signed' | 'ephemeral' | 'plug-in';
  readonly rotation: RotationPhase;
  readonly roots: readonly CertificateSummary[];
  /** The CA that signs new SVIDs. */
  readonly signingCa: CertificateSummary;
  /** Where the signing CA's key is: `in process`, or the PKCS#11 module, token and key label. */
  readonly signingKey: string;
  /** CA certificates between the signing CA and the root, signing CA first (plug-in mode). */
  readonly intermediates: readonly CertificateSummary[];
  readonly revoked: readonly RevokedCertificate[];
  /** Unexpired, unrevoked SVIDs issued, per issuing CA subject. */
  readonly outstanding: Readonly<Record<string, number>>;
}

/** What changed, so the data path knows what to push. */
export interface CaChange {
  readonly kind: 'trust-bundle' | 'crl' | 'signing-ca';
}

/** The CA seam: sign SVIDs, publish trust bundle and CRLs, revoke, rotate the root. Backends plug in behind it. */
export interface CertificateAuthority {
  readonly trustDomain: TrustDomain;
  /** Signs an X.509-SVID for the public key; the identity must be in this CA's trust domain. */
  signSvid(req: SignSvidRequest): Result<IssuedSvid, CaError>;
  /** The current trust bundle. */
  trustBundle(): TrustBundle;
  /** The current CRL of every issuing CA whose certificates may be outstanding; re-signed at half its validity. */
  crl(): readonly IssuedCrl[];
  /** Revokes one issued certificate (async: with a shared store it is a compare-and-swap) by serial (hex, any case, colons allowed); unknown serials are `unknown-serial`. */
  revoke(serialHex: string): Promise<Result<RevokedCertificate, CaError>>;
  /** Revokes every unexpired certificate issued to the identity; returns what was revoked (maybe nothing). */
  revokeIdentity(id: SpiffeId): Promise<Result<readonly RevokedCertificate[], CaError>>;
  /** Moves a root rotation forward: prepare, activate, retire (refused early unless forced). */
  rotateRoot(phase: 'prepare' | 'activate' | 'retire', opts?: { readonly force?: boolean }): Promise<Result<CaStatus, CaError>>;
  /** The CA's current state. */
  status(): CaStatus;
  /** Re-signs CRLs past half their validity and drops expired records: call it periodically (e.g. every few minutes). */
  maintain(): void;
  /** Subscribes to trust bundle, CRL and signing CA changes; returns the unsubscribe function. */
  onChange(cb: (change: CaChange) => void): () => void;
  /** Releases files held open; the CA must not be used afterwards. */
  close(): void;
}
