import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { err, ok } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import { NULL, oid, sequence } from './der.js';

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
