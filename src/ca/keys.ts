import { createPublicKey, generateKeyPairSync, KeyObject, sign } from 'node:crypto';
import { err, ok } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import { bitString, NULL, oid, sequence } from './der.js';

/** Key kinds the CA generates: ECDSA P-256 (the default) or RSA 2048. */
export type KeyKind = 'ec-p256' | 'rsa-2048';

/** An accepted key, described: ECDSA P-256 or P-384, or RSA of at least 2048 bits. */
export type KeyDescription = 'ec-p256' | 'ec-p384' | `rsa-${number}`;

/** A private key and its public half. */
export interface KeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** A signature algorithm for a CA key: the digest for `crypto.sign` and the DER AlgorithmIdentifier. */
export interface SignatureAlgorithm {
  readonly hash: 'sha256' | 'sha384';
  readonly algorithmIdentifier: Buffer;
  readonly name: string;
}

/**
 * A CA private key held outside the process (a PKCS#11 token): it signs and is never exported.
 * `sign` throws a KeyUnavailableError when the key cannot sign right now (token gone, session lost).
 */
export interface ExternalSigningKey {
  readonly external: true;
  readonly publicKey: KeyObject;
  /** Where the key lives, for logs and errors (module, token and key label). */
  readonly description: string;
  /** Signs to-be-signed DER (certificate or CRL) and returns the DER signature value for the algorithm. */
  sign(alg: SignatureAlgorithm, tbs: Buffer): Buffer;
}

/** A CA signing key: a private KeyObject in this process, or a key in a token. */
export type CaSigningKey = KeyObject | ExternalSigningKey;

/** Thrown by an external key that cannot sign now: issuance answers `not-ready` (UNAVAILABLE) and retries later. */
export class KeyUnavailableError extends Error {
  override readonly name = 'KeyUnavailableError';
}

/** Whether a CA key lives outside the process. */
export const isExternalKey = (k: CaSigningKey): k is ExternalSigningKey => !(k instanceof KeyObject);

/** Returns the function that signs to-be-signed DER with a CA key: built once per CA, called per signature. */
export function tbsSignerFor(key: CaSigningKey, alg: SignatureAlgorithm): (tbs: Buffer) => Buffer {
  if (isExternalKey(key)) return (tbs) => key.sign(alg, tbs);
  return (tbs) => sign(alg.hash, tbs, key);
}

/** The public half of a CA signing key. */
/** The PEM of a CA key kept in process; a key held in a token never leaves it, so asking for it is a programming error. */
export function caKeyPem(k: CaSigningKey): string {
  if (isExternalKey(k)) throw new Error(`the CA key (${k.description}) is held in a PKCS#11 token and never leaves it`);
  return k.export({ type: 'pkcs8', format: 'pem' }) as string;
}

export const publicOfCaKey = (k: CaSigningKey): KeyObject => (isExternalKey(k) ? k.publicKey : publicOf(k));

/** Generates a key pair of the given kind (ECDSA P-256 unless told otherwise). */
export function generateKeyPair(kind: KeyKind = 'ec-p256'): KeyPair {
  if (kind === 'ec-p256') return generateKeyPairSync('ec', { namedCurve: 'P-256' });
  if (kind === 'rsa-2048') return generateKeyPairSync('rsa', { modulusLength: 2048 });
  throw new Error(`unknown key kind ${String(kind)}`);
}

/** Describes a public or private key, rejecting weak or unsupported ones (RSA under 2048 bits, EC other than P-256/P-384). */
export function describeKey(key: KeyObject): Result<KeyDescription, string> {
  if (key.type === 'secret') return err('expected an asymmetric key, got a secret key');
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (d.namedCurve === 'prime256v1' || d.namedCurve === 'P-256') return ok('ec-p256');
    if (d.namedCurve === 'secp384r1' || d.namedCurve === 'P-384') return ok('ec-p384');
    return err(`ec curve ${d.namedCurve ?? 'unknown'} is not accepted (P-256 or P-384 only)`);
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = d.modulusLength ?? 0;
    if (bits < 2048) return err(`rsa key of ${bits} bits is too weak (at least 2048)`);
    if (bits > 8192) return err(`rsa key of ${bits} bits is too large (at most 8192)`);
    return ok(`rsa-${bits}` as const);
  }
  return err(`key type ${key.asymmetricKeyType ?? 'unknown'} is not accepted (ECDSA P-256/P-384 or RSA)`);
}

const ECDSA_SHA256: SignatureAlgorithm = {
  hash: 'sha256',
  algorithmIdentifier: sequence(oid('1.2.840.10045.4.3.2')),
  name: 'ecdsa-with-SHA256',
};
const ECDSA_SHA384: SignatureAlgorithm = {
  hash: 'sha384',
  algorithmIdentifier: sequence(oid('1.2.840.10045.4.3.3')),
  name: 'ecdsa-with-SHA384',
};
const RSA_SHA256: SignatureAlgorithm = {
  hash: 'sha256',
  algorithmIdentifier: sequence(oid('1.2.840.113549.1.1.11'), NULL),
  name: 'sha256WithRSAEncryption',
};

/** The signature algorithm a CA key signs with: ECDSA with SHA-256 (P-256) or SHA-384 (P-384), or SHA-256 with RSA. */
export function signatureAlgorithmFor(desc: KeyDescription): SignatureAlgorithm {
  if (desc === 'ec-p256') return ECDSA_SHA256;
  if (desc === 'ec-p384') return ECDSA_SHA384;
  return RSA_SHA256;
}

/** Returns the public half of a key (itself when already public). */
export const publicOf = (key: KeyObject): KeyObject => (key.type === 'public' ? key : createPublicKey(key));

const EC_SPKI_PREFIX = {
  // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) 0x04 (uncompressed point) }
  'ec-p256': Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200' + '04', 'hex'),
  // SEQUENCE { SEQUENCE { id-ecPublicKey, secp384r1 }, BIT STRING (0 unused bits) 0x04 }
  'ec-p384': Buffer.from('3076301006072a8648ce3d020106052b81040022036200' + '04', 'hex'),
} as const;
const RSA_ALG = sequence(oid('1.2.840.113549.1.1.1'), NULL);

function coordinate(b64url: string | undefined, size: number): Buffer {
  const b = Buffer.from(b64url ?? '', 'base64url');
  if (b.length === size) return b;
  if (b.length > size) throw new Error('ec coordinate too long');
  return Buffer.concat([Buffer.alloc(size - b.length), b]);
}

/**
 * Encodes a public key as DER SubjectPublicKeyInfo.
 *
 * Built from the JWK or PKCS#1 export rather than `export({ type: 'spki' })`: in Node 20 with
 * OpenSSL 3 the SPKI encoder costs ~120 us per call (four times an ECDSA signature), the JWK
 * export ~5 us. The output is byte-for-byte what the SPKI export gives (tested).
 */
export function spkiOf(key: KeyObject, desc: KeyDescription): Buffer {
  if (desc === 'ec-p256' || desc === 'ec-p384') {
    const size = desc === 'ec-p256' ? 32 : 48;
    const prefix = EC_SPKI_PREFIX[desc];
    const jwk = key.export({ format: 'jwk' });
    const out = Buffer.allocUnsafe(prefix.length + 2 * size);
    out.set(prefix, 0);
    // JWK coordinates are fixed-length (RFC 7518 6.2.1.2); anything else is decoded and left-padded.
    if (out.write(jwk.x ?? '', prefix.length, 'base64url') !== size) out.set(coordinate(jwk.x, size), prefix.length);
    if (out.write(jwk.y ?? '', prefix.length + size, 'base64url') !== size) out.set(coordinate(jwk.y, size), prefix.length + size);
    return out;
  }
  return sequence(RSA_ALG, bitString(publicOf(key).export({ type: 'pkcs1', format: 'der' })));
}

// The fixed DER around a P-256 key's bytes (RFC 5480 SubjectPublicKeyInfo; RFC 5208 PKCS#8
// holding an RFC 5915 ECPrivateKey with its public key), as OpenSSL writes them. Node's
// DER/PEM export of EC keys goes through OpenSSL 3's encoder framework and costs several
// signatures per key, while JWK export is cheap: on the sidecar path, where the control
// plane makes a key for every SVID, filling these templates keeps issuance near raw signing.
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
const P256_PKCS8_PREFIX = Buffer.from('308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420', 'hex');
const P256_PKCS8_PUBLIC = Buffer.from('a144034200', 'hex');
const UNCOMPRESSED = Buffer.from([0x04]);

/** A P-256 key pair's SubjectPublicKeyInfo (DER) and PKCS#8 private key (PEM), encoded from its JWK form. */
export function encodeP256KeyPair(privateKey: KeyObject): { readonly spkiDer: Buffer; readonly pkcs8Pem: string } {
  const jwk = privateKey.export({ format: 'jwk' });
  if (jwk.crv !== 'P-256' || !jwk.d || !jwk.x || !jwk.y) throw new Error('encodeP256KeyPair needs a P-256 private key');
  const [d, x, y] = [jwk.d, jwk.x, jwk.y].map((v) => Buffer.from(v, 'base64url'));
  if (d!.length !== 32 || x!.length !== 32 || y!.length !== 32) throw new Error('P-256 key parts must be 32 bytes');
  const point = Buffer.concat([UNCOMPRESSED, x!, y!]);
  const pkcs8 = Buffer.concat([P256_PKCS8_PREFIX, d!, P256_PKCS8_PUBLIC, point]);
  const b64 = pkcs8.toString('base64').replace(/.{64}/g, '$&\n');
  return {
    spkiDer: Buffer.concat([P256_SPKI_PREFIX, point]),
    pkcs8Pem: `-----BEGIN PRIVATE KEY-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END PRIVATE KEY-----\n`,
  };
}
