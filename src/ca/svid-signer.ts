// The hot path: SVID to-be-signed DER written directly, signed with a cached KeyObject.
//
// Everything that does not depend on the request (version, signature algorithm, issuer
// name, basicConstraints, keyUsage, extKeyUsage, authorityKeyIdentifier) is encoded once
// per issuing CA. Per signature we encode the serial, validity, the subject's key, its key
// identifier and the SAN, then call crypto.sign once. See der.ts for why not pkijs.
import { sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { bitString, explicit, sequence, smallInteger, time, unsignedInteger } from './der.js';
import type { SignatureAlgorithm } from './keys.js';
import {
  authorityKeyIdentifier,
  basicConstraints,
  EMPTY_NAME,
  extKeyUsage,
  keyIdentifier,
  KeyUsage,
  keyUsage,
  OID,
  randomSerial,
  subjectAltName,
  subjectKeyIdentifier,
} from './x509.js';

/** What the signer needs of its issuing CA; built once per CA. */
export interface SigningIdentity {
  readonly key: KeyObject;
  readonly alg: SignatureAlgorithm;
  /** The issuer's subject Name, DER, taken verbatim from its certificate. */
  readonly subjectDer: Buffer;
  readonly keyId: Buffer;
}

/** One SVID to sign: the caller has already validated identity, key and validity. */
export interface SvidTemplate {
  readonly spiffeId: string;
  /** The subject public key as DER SubjectPublicKeyInfo. */
  readonly spki: Buffer;
  readonly rsa: boolean;
  readonly dnsNames: readonly string[];
  readonly notBefore: number;
  readonly notAfter: number;
}

/** A signed SVID leaf. */
export interface SignedLeaf {
  readonly der: Buffer;
  readonly serialHex: string;
}

/** Signs SVID leaves for one issuing CA. */
export interface SvidSigner {
  sign(t: SvidTemplate): SignedLeaf;
}

const V3 = explicit(0, smallInteger(2));

/** Creates a signer with the constant parts of every SVID precomputed for the given issuing CA. */
export function createSvidSigner(ca: SigningIdentity): SvidSigner {
  // X509-SVID spec 4.1-4.3: leaf is CA=false (critical basicConstraints), keyUsage critical with
  // digitalSignature only (keyEncipherment too for RSA keys), never keyCertSign or cRLSign.
  const alg = ca.alg.algorithmIdentifier;
  const issuer = ca.subjectDer;
  const constExts = Buffer.concat([
    basicConstraints(false),
    extKeyUsage([OID.serverAuth, OID.clientAuth]),
    authorityKeyIdentifier(ca.keyId),
  ]);
  const kuEc = keyUsage([KeyUsage.digitalSignature]);
  const kuRsa = keyUsage([KeyUsage.digitalSignature, KeyUsage.keyEncipherment]);
  const pool = { buf: Buffer.allocUnsafe(4096), off: 4096 };
  return {
    sign(t) {
      const serial = randomSerial(pool);
      // The subject is empty, so RFC 5280 4.2.1.6 requires the SAN to be critical.
      const san = subjectAltName([t.spiffeId], t.dnsNames, true);
      const tbs = sequence(
        V3,
        unsignedInteger(serial),
        alg,
        issuer,
        sequence(time(t.notBefore), time(t.notAfter)),
        EMPTY_NAME,
        t.spki,
        explicit(3, sequence(constExts, t.rsa ? kuRsa : kuEc, subjectKeyIdentifier(keyIdentifier(t.spki)), san)),
      );
      const der = sequence(tbs, alg, bitString(sign(ca.alg.hash, tbs, ca.key)));
      return { der, serialHex: serial.toString('hex') };
    },
  };
}
