// The hot path: SVID to-be-signed DER written directly, signed with a cached key (KeyObject or PKCS#11 handle).
//
// Everything that does not depend on the request (version, signature algorithm, issuer
// name, basicConstraints, keyUsage, extKeyUsage, authorityKeyIdentifier) is encoded once
// per issuing CA. Per signature we encode the serial, validity, the subject's key, its key
// identifier and the SAN, then sign once (crypto.sign, or C_Sign in a PKCS#11 token). See der.ts for why not pkijs.
import { explicit, oid, sequence, smallInteger, time } from './der.js';
import { tbsSignerFor } from './keys.js';
import type { CaSigningKey, SignatureAlgorithm } from './keys.js';
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
} from './x509.js';

/** What the signer needs of its issuing CA; built once per CA. */
export interface SigningIdentity {
  /** In process, or in a PKCS#11 token (its sign throws KeyUnavailableError when the token is gone). */
  readonly key: CaSigningKey;
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
  /** IP address SANs as their 4- or 16-byte network form (RFC 5280 4.2.1.6 iPAddress). */
  readonly ipAddresses?: readonly Buffer[];
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
const SERIAL_HEADER = Buffer.from([0x02, 16]);
const SAN_OID = oid(OID.subjectAltName);
const SKI_OID = oid(OID.subjectKeyIdentifier);
const TRUE = Buffer.from([0x01, 0x01, 0xff]);

/** Bytes a DER header takes for content of length n. */
const headerSize = (n: number): number => (n < 0x80 ? 2 : n < 0x100 ? 3 : n < 0x10000 ? 4 : 5);
/** Bytes a whole TLV takes for content of length n. */
const tlvSize = (n: number): number => headerSize(n) + n;

function putHeader(buf: Buffer, off: number, tag: number, n: number): number {
  buf[off++] = tag;
  if (n < 0x80) buf[off++] = n;
  else if (n < 0x100) {
    buf[off++] = 0x81;
    buf[off++] = n;
  } else if (n < 0x10000) {
    buf[off++] = 0x82;
    buf[off++] = n >> 8;
    buf[off++] = n & 0xff;
  } else {
    buf[off++] = 0x83;
    buf[off++] = n >> 16;
    buf[off++] = (n >> 8) & 0xff;
    buf[off++] = n & 0xff;
  }
  return off;
}

const put = (buf: Buffer, off: number, part: Uint8Array): number => {
  buf.set(part, off);
  return off + part.length;
};

/** Creates a signer with the constant parts of every SVID precomputed for the given issuing CA. */
export function createSvidSigner(ca: SigningIdentity): SvidSigner {
  // X509-SVID spec 4.1-4.3: leaf is CA=false (critical basicConstraints), keyUsage critical with
  // digitalSignature only (keyEncipherment too for RSA keys), never keyCertSign or cRLSign.
  const alg = ca.alg.algorithmIdentifier;
  const signTbs = tbsSignerFor(ca.key, ca.alg);
  // Everything between the version and the validity, and the empty subject after it, is constant per CA.
  const afterSerial = Buffer.concat([alg, ca.subjectDer]);
  const constExts = Buffer.concat([
    basicConstraints(false),
    extKeyUsage([OID.serverAuth, OID.clientAuth]),
    authorityKeyIdentifier(ca.keyId),
  ]);
  const kuEc = keyUsage([KeyUsage.digitalSignature]);
  const kuRsa = keyUsage([KeyUsage.digitalSignature, KeyUsage.keyEncipherment]);
  const pool = { buf: Buffer.allocUnsafe(4096), off: 4096 };
  // The TBS is written into one scratch buffer and signed from there; only the final certificate is allocated.
  let scratch = Buffer.allocUnsafe(8192);
  // Certificates signed in the same second share their validity bytes; encode them once.
  let lastValidity: { nb: number; na: number; der: Buffer } = { nb: NaN, na: NaN, der: Buffer.alloc(0) };
  const validity = (nb: number, na: number): Buffer => {
    if (lastValidity.nb !== nb || lastValidity.na !== na) lastValidity = { nb, na, der: sequence(time(nb), time(na)) };
    return lastValidity.der;
  };
  return {
    sign(t) {
      const serial = randomSerial(pool);
      const ku = t.rsa ? kuRsa : kuEc;
      const kid = keyIdentifier(t.spki);
      const val = validity(t.notBefore, t.notAfter);
      // SAN: Extension { subjectAltName, critical TRUE (the subject is empty: RFC 5280 4.2.1.6),
      // OCTET STRING { SEQUENCE { [6] uri, [2] dns... } } }.
      const uriLen = Buffer.byteLength(t.spiffeId, 'latin1');
      let namesLen = tlvSize(uriLen);
      for (const d of t.dnsNames) namesLen += tlvSize(Buffer.byteLength(d, 'latin1'));
      const ips = t.ipAddresses ?? [];
      for (const ip of ips) namesLen += tlvSize(ip.length);
      const sanValueLen = tlvSize(namesLen);
      const sanLen = SAN_OID.length + TRUE.length + tlvSize(sanValueLen);
      const skiLen = SKI_OID.length + tlvSize(tlvSize(kid.length));
      const extsLen = constExts.length + ku.length + tlvSize(skiLen) + tlvSize(sanLen);
      const tbsLen =
        V3.length +
        SERIAL_HEADER.length +
        serial.length +
        afterSerial.length +
        val.length +
        EMPTY_NAME.length +
        t.spki.length +
        tlvSize(tlvSize(extsLen));
      const total = tlvSize(tbsLen);
      if (scratch.length < total) scratch = Buffer.allocUnsafe(total * 2);
      const b = scratch;
      let o = putHeader(b, 0, 0x30, tbsLen);
      o = put(b, o, V3);
      o = put(b, o, SERIAL_HEADER);
      o = put(b, o, serial);
      o = put(b, o, afterSerial);
      o = put(b, o, val);
      o = put(b, o, EMPTY_NAME);
      o = put(b, o, t.spki);
      o = putHeader(b, o, 0xa3, tlvSize(extsLen));
      o = putHeader(b, o, 0x30, extsLen);
      o = put(b, o, constExts);
      o = put(b, o, ku);
      o = putHeader(b, o, 0x30, skiLen);
      o = put(b, o, SKI_OID);
      o = putHeader(b, o, 0x04, tlvSize(kid.length));
      o = putHeader(b, o, 0x04, kid.length);
      o = put(b, o, kid);
      o = putHeader(b, o, 0x30, sanLen);
      o = put(b, o, SAN_OID);
      o = put(b, o, TRUE);
      o = putHeader(b, o, 0x04, sanValueLen);
      o = putHeader(b, o, 0x30, namesLen);
      o = putHeader(b, o, 0x86, uriLen);
      o += b.write(t.spiffeId, o, 'latin1');
      for (const d of t.dnsNames) {
        o = putHeader(b, o, 0x82, Buffer.byteLength(d, 'latin1'));
        o += b.write(d, o, 'latin1');
      }
      for (const ip of ips) {
        o = putHeader(b, o, 0x87, ip.length);
        o = put(b, o, ip);
      }
      if (o !== total) throw new Error(`svid: tbs length mismatch (${o} != ${total})`);
      const tbs = b.subarray(0, total);
      const sig = signTbs(tbs);
      const bitsLen = sig.length + 1;
      const certLen = total + alg.length + tlvSize(bitsLen);
      const der = Buffer.allocUnsafe(tlvSize(certLen));
      let c = putHeader(der, 0, 0x30, certLen);
      der.set(tbs, c);
      c += total;
      c = put(der, c, alg);
      c = putHeader(der, c, 0x03, bitsLen);
      der[c++] = 0;
      der.set(sig, c);
      return { der, serialHex: serial.toString('hex') };
    },
  };
}
