// X.509 building blocks (RFC 5280) written with the hand-rolled DER encoder, and a
// minimal reader for the certificate fields the CA needs from its own material.
import { hash, randomFillSync } from 'node:crypto';
import {
  bitString,
  boolean,
  children,
  content,
  explicit,
  implicitPrimitive,
  octetString,
  oid,
  raw,
  readTlv,
  sequence,
  set,
  smallInteger,
  Tag,
  time,
  unsignedInteger,
  utf8String,
} from './der.js';
import { tbsSignerFor } from './keys.js';
import type { CaSigningKey, SignatureAlgorithm } from './keys.js';

/** Object identifiers used by the CA. */
export const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  crlNumber: '2.5.29.20',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** Key usage bits (RFC 5280 4.2.1.3), numbered as in the ASN.1 named bit list. */
export const KeyUsage = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

/** Encodes a Name of one attribute per RDN, values as UTF8String. */
export function name(attrs: readonly (readonly [string, string])[]): Buffer {
  return sequence(...attrs.map(([o, v]) => set(sequence(oid(o), utf8String(v)))));
}

/** The empty Name (an SVID's subject: the identity lives in the critical SAN, RFC 5280 4.2.1.6). */
export const EMPTY_NAME = sequence();

/** Encodes one Extension; the critical flag is omitted when false (DER default). */
export function extension(extOid: string, critical: boolean, value: Uint8Array): Buffer {
  return critical ? sequence(oid(extOid), boolean(true), octetString(value)) : sequence(oid(extOid), octetString(value));
}

/** Encodes a critical basicConstraints extension. */
export function basicConstraints(ca: boolean, pathLen?: number): Buffer {
  const parts: Buffer[] = [];
  if (ca) parts.push(boolean(true));
  if (ca && pathLen !== undefined) parts.push(smallInteger(pathLen));
  return extension(OID.basicConstraints, true, sequence(...parts));
}

/** Encodes a critical keyUsage extension with the given bits (minimal named bit list encoding). */
export function keyUsage(bits: readonly number[]): Buffer {
  const high = Math.max(...bits);
  const bytes = Buffer.alloc((high >> 3) + 1);
  for (const b of bits) bytes[b >> 3]! |= 0x80 >> (b & 7);
  return extension(OID.keyUsage, true, bitString(bytes, 7 - (high & 7)));
}

/** Encodes an extKeyUsage extension (non-critical). */
export const extKeyUsage = (oids: readonly string[]): Buffer => extension(OID.extKeyUsage, false, sequence(...oids.map(oid)));

/** Encodes a subjectKeyIdentifier extension. */
export const subjectKeyIdentifier = (kid: Uint8Array): Buffer => extension(OID.subjectKeyIdentifier, false, octetString(kid));

/** Encodes an authorityKeyIdentifier extension carrying only the keyIdentifier. */
export const authorityKeyIdentifier = (kid: Uint8Array): Buffer =>
  extension(OID.authorityKeyIdentifier, false, sequence(implicitPrimitive(0, kid)));

/** Encodes a subjectAltName extension with URI and DNS names. */
export function subjectAltName(uris: readonly string[], dnsNames: readonly string[], critical: boolean): Buffer {
  const names = [
    ...uris.map((u) => implicitPrimitive(6, Buffer.from(u, 'latin1'))),
    ...dnsNames.map((d) => implicitPrimitive(2, Buffer.from(d, 'latin1'))),
  ];
  return extension(OID.subjectAltName, critical, sequence(...names));
}

/** The key identifier of a SubjectPublicKeyInfo: SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2, method 1). */
export function keyIdentifier(spkiDer: Uint8Array): Buffer {
  // Fast path for P-256 keys (the common case): the 65-byte point is the last thing in a 91-byte SPKI.
  if (spkiDer.length === 91 && spkiDer[0] === 0x30 && spkiDer[25] === 0x00 && spkiDer[26] === 0x04) {
    return hash('sha1', spkiDer.subarray(26), 'buffer');
  }
  const spki = readTlv(spkiDer);
  const [, bits] = children(spkiDer, spki);
  if (!bits || bits.tag !== Tag.bitString) throw new Error('x509: bad SubjectPublicKeyInfo');
  return hash('sha1', spkiDer.subarray(bits.contentStart + 1, bits.end), 'buffer');
}

/** Returns 16 random bytes for a positive serial: 126 random bits, top byte in 0x40..0x7f so the DER length is fixed. */
export function randomSerial(pool?: { buf: Buffer; off: number }): Buffer {
  if (!pool) {
    const b = randomFillSync(Buffer.allocUnsafe(16));
    b[0] = (b[0]! & 0x3f) | 0x40;
    return b;
  }
  if (pool.off + 16 > pool.buf.length) {
    randomFillSync(pool.buf);
    pool.off = 0;
  }
  const b = Buffer.from(pool.buf.subarray(pool.off, pool.off + 16));
  pool.off += 16;
  b[0] = (b[0]! & 0x3f) | 0x40;
  return b;
}

/** The fields of a certificate to build; extensions are pre-encoded. */
export interface CertificateFields {
  readonly serial: Uint8Array;
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly spki: Uint8Array;
  readonly extensions: readonly Uint8Array[];
}

const V3 = explicit(0, smallInteger(2));

/** Builds the DER TBSCertificate for the fields (RFC 5280 4.1). */
export function tbsCertificate(f: CertificateFields, alg: SignatureAlgorithm): Buffer {
  return sequence(
    V3,
    unsignedInteger(f.serial),
    alg.algorithmIdentifier,
    f.issuer,
    sequence(time(f.notBefore), time(f.notAfter)),
    f.subject,
    f.spki,
    explicit(3, sequence(...f.extensions)),
  );
}

/** Wraps to-be-signed DER (certificate or CRL) with its algorithm and signature: the outer SEQUENCE. */
export function signDer(tbs: Buffer, alg: SignatureAlgorithm, key: CaSigningKey): Buffer {
  return sequence(tbs, alg.algorithmIdentifier, bitString(tbsSignerFor(key, alg)(tbs)));
}

/** Builds and signs a certificate (used for CA certificates; SVIDs take the precomputed path in svid-signer.ts). */
export function buildCertificate(f: CertificateFields, alg: SignatureAlgorithm, key: CaSigningKey): Buffer {
  return signDer(tbsCertificate(f, alg), alg, key);
}

/** The raw fields of a certificate the CA reuses verbatim (issuer name, key identifiers) or checks. */
export interface CertificateInfo {
  readonly tbs: Buffer;
  readonly serialHex: string;
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly spki: Buffer;
  /** Extensions by dotted OID: criticality and the extnValue content. */
  readonly extensions: ReadonlyMap<string, { readonly critical: boolean; readonly value: Buffer }>;
}

/** Decodes the DER of an OBJECT IDENTIFIER's content to dotted form. */
export function decodeOid(c: Uint8Array): string {
  const arcs: number[] = [];
  let v = 0;
  for (const b of c) {
    v = v * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      if (arcs.length === 0) arcs.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else arcs.push(v);
      v = 0;
    }
  }
  return arcs.join('.');
}

/** Decodes an X.509 Time (UTCTime or GeneralizedTime, whole seconds, 'Z'). */
export function decodeTime(buf: Uint8Array, t: { tag: number; contentStart: number; end: number }): number {
  const s = Buffer.from(buf.subarray(t.contentStart, t.end)).toString('latin1');
  const m =
    t.tag === Tag.utcTime
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s)
      : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) throw new Error(`x509: unsupported time '${s}'`);
  let y = Number(m[1]);
  if (t.tag === Tag.utcTime) y += y >= 50 ? 1900 : 2000;
  return Date.UTC(y, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

/** Reads the fields of a DER certificate; throws on malformed input (callers catch at the loading edge). */
export function readCertificate(der: Uint8Array): CertificateInfo {
  const cert = readTlv(der);
  if (cert.end !== der.length) throw new Error('x509: trailing data after certificate');
  const [tbsT] = children(der, cert);
  if (!tbsT) throw new Error('x509: empty certificate');
  const f = children(der, tbsT);
  let i = 0;
  if (f[0]?.tag === 0xa0) i = 1;
  const [serialT, , issuerT, validityT, subjectT, spkiT] = f.slice(i);
  if (!serialT || !issuerT || !validityT || !subjectT || !spkiT) throw new Error('x509: truncated TBSCertificate');
  const [nb, na] = children(der, validityT);
  if (!nb || !na) throw new Error('x509: bad validity');
  const extensions = new Map<string, { critical: boolean; value: Buffer }>();
  const extsT = f.slice(i + 6).find((t) => t.tag === 0xa3);
  if (extsT) {
    const [list] = children(der, extsT);
    for (const e of list ? children(der, list) : []) {
      const parts = children(der, e);
      const id = decodeOid(content(der, parts[0]!));
      const critical = parts.length === 3 && der[parts[1]!.contentStart] !== 0;
      extensions.set(id, { critical, value: content(der, parts[parts.length - 1]!) });
    }
  }
  return {
    tbs: raw(der, tbsT),
    serialHex: content(der, serialT)
      .toString('hex')
      .replace(/^(00)+(?=.)/, ''),
    issuer: raw(der, issuerT),
    subject: raw(der, subjectT),
    notBefore: decodeTime(der, nb),
    notAfter: decodeTime(der, na),
    spki: raw(der, spkiT),
    extensions,
  };
}

/** Returns the keyUsage bits set in a certificate, or undefined when it has no keyUsage extension. */
export function keyUsageBits(info: CertificateInfo): Set<number> | undefined {
  const ext = info.extensions.get(OID.keyUsage);
  if (!ext) return undefined;
  const bs = readTlv(ext.value);
  const bytes = ext.value.subarray(bs.contentStart + 1, bs.end);
  const bits = new Set<number>();
  bytes.forEach((byte, i) => {
    for (let b = 0; b < 8; b++) if (byte & (0x80 >> b)) bits.add(i * 8 + b);
  });
  return bits;
}

/** Returns the subjectKeyIdentifier of a certificate, or the RFC 5280 method-1 identifier of its key when absent. */
export function subjectKeyIdOf(info: CertificateInfo): Buffer {
  const ext = info.extensions.get(OID.subjectKeyIdentifier);
  if (ext) return content(ext.value, readTlv(ext.value));
  return keyIdentifier(info.spki);
}

/** Whether a certificate's basicConstraints says CA=true (node's X509Certificate.ca also folds in keyUsage). */
export function basicConstraintsCa(info: CertificateInfo): boolean {
  const ext = info.extensions.get(OID.basicConstraints);
  if (!ext) return false;
  const seq = readTlv(ext.value);
  const first = children(ext.value, seq)[0];
  return first !== undefined && first.tag === Tag.boolean && ext.value[first.contentStart] !== 0;
}
