// CRLs (RFC 5280 section 5), written with the same DER encoder as certificates. CRLs are not
// on the hot path; reusing the encoder just keeps one way of writing X.509.
import { implicitPrimitive, explicit, sequence, smallInteger, time, unsignedInteger } from './der.js';
import type { SigningCa } from './material.js';
import { extension, OID, signDer } from './x509.js';

/** One entry of a CRL. */
export interface CrlEntry {
  readonly serialHex: string;
  readonly revokedAt: number;
}

const V2 = smallInteger(1);

/** Builds and signs a v2 CRL with the authorityKeyIdentifier and cRLNumber extensions. */
export function buildCrl(opts: {
  readonly issuer: SigningCa;
  readonly thisUpdate: number;
  readonly nextUpdate: number;
  readonly crlNumber: number;
  readonly entries: readonly CrlEntry[];
}): Buffer {
  const parts: Buffer[] = [V2, opts.issuer.alg.algorithmIdentifier, opts.issuer.info.subject, time(opts.thisUpdate), time(opts.nextUpdate)];
  // RFC 5280 5.1.2.6: when nothing is revoked the revokedCertificates list is absent, not empty.
  if (opts.entries.length > 0) {
    parts.push(
      sequence(
        ...opts.entries.map((e) =>
          sequence(unsignedInteger(Buffer.from(e.serialHex.length % 2 ? '0' + e.serialHex : e.serialHex, 'hex')), time(e.revokedAt)),
        ),
      ),
    );
  }
  parts.push(
    explicit(
      0,
      sequence(
        extension(OID.authorityKeyIdentifier, false, sequence(implicitPrimitive(0, opts.issuer.keyId))),
        extension(OID.crlNumber, false, smallInteger(opts.crlNumber)),
      ),
    ),
  );
  return signDer(sequence(...parts), opts.issuer.alg, opts.issuer.key);
}
