// A small DER encoder and reader for the certificate hot path.
//
// Why hand-written: building a TBSCertificate through the pkijs/asn1js object model and
// serializing it costs far more than the ECDSA signature itself (the earlier design ran at
// about 4% of the raw signing rate; bench/ca.bench.ts measures 1.5-2.5% for it on Node 20). Writing the few DER shapes X.509 needs straight into
// buffers keeps issuance close to the cost of `crypto.sign`. pkijs still parses certificates,
// CSRs and CRLs, and the tests use it to read back what this file writes.

/** DER tag numbers used by X.509 (universal class unless noted). */
export const Tag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

/** Encodes a DER length (definite form, minimal octets). */
export function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  if (n < 0x10000) return Buffer.from([0x82, n >> 8, n & 0xff]);
  if (n < 0x1000000) return Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  throw new Error(`der: length ${n} too large`);
}

/** Encodes one TLV whose content is the concatenation of parts, with a single allocation. */
export function tlv(tag: number, ...parts: readonly Uint8Array[]): Buffer {
  let n = 0;
  for (const p of parts) n += p.length;
  const lenBytes = n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 4;
  const out = Buffer.allocUnsafe(1 + lenBytes + n);
  out[0] = tag;
  if (lenBytes === 1) out[1] = n;
  else if (lenBytes === 2) {
    out[1] = 0x81;
    out[2] = n;
  } else if (lenBytes === 3) {
    out[1] = 0x82;
    out[2] = n >> 8;
    out[3] = n & 0xff;
  } else {
    if (n >= 0x1000000) throw new Error(`der: length ${n} too large`);
    out[1] = 0x83;
    out[2] = n >> 16;
    out[3] = (n >> 8) & 0xff;
    out[4] = n & 0xff;
  }
  let o = 1 + lenBytes;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Encodes a SEQUENCE of already-encoded elements. */
export const sequence = (...parts: readonly Uint8Array[]): Buffer => tlv(Tag.sequence, ...parts);

/** Encodes a SET of already-encoded elements (callers keep DER order; X.509 names use one element per SET). */
export const set = (...parts: readonly Uint8Array[]): Buffer => tlv(Tag.set, ...parts);

/** Encodes an explicitly tagged context-specific value `[n] EXPLICIT`. */
export const explicit = (n: number, ...parts: readonly Uint8Array[]): Buffer => tlv(0xa0 | n, ...parts);

/** Encodes an implicitly tagged primitive context-specific value `[n] IMPLICIT` from raw content. */
export const implicitPrimitive = (n: number, content: Uint8Array): Buffer => tlv(0x80 | n, content);

/** Encodes a non-negative INTEGER from big-endian unsigned bytes, adding or stripping leading zeros as DER requires. */
export function unsignedInteger(bytes: Uint8Array): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0 && bytes[i + 1]! < 0x80) i++;
  const b = bytes.subarray(i);
  if (b.length === 0) return Buffer.from([Tag.integer, 1, 0]);
  return b[0]! >= 0x80 ? tlv(Tag.integer, Buffer.from([0]), b) : tlv(Tag.integer, b);
}

/** Encodes a small non-negative INTEGER. */
export function smallInteger(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`der: bad integer ${n}`);
  const bytes: number[] = [];
  do {
    bytes.unshift(n % 256);
    n = Math.floor(n / 256);
  } while (n > 0);
  return unsignedInteger(Uint8Array.from(bytes));
}

const oidCache = new Map<string, Buffer>();

/** Encodes an OBJECT IDENTIFIER from dotted form (memoized: X.509 uses a handful of OIDs over and over). */
export function oid(dotted: string): Buffer {
  let der = oidCache.get(dotted);
  if (!der) {
    der = encodeOid(dotted);
    oidCache.set(dotted, der);
  }
  return der;
}

function encodeOid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) throw new Error(`der: bad oid ${dotted}`);
  const out: number[] = [];
  for (const arc of [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)]) {
    const b: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) b.unshift((v & 0x7f) | 0x80);
    out.push(...b);
  }
  return tlv(Tag.oid, Uint8Array.from(out));
}

/** Encodes a BIT STRING with the given number of unused bits in the last octet. */
export const bitString = (bytes: Uint8Array, unusedBits = 0): Buffer => tlv(Tag.bitString, Buffer.from([unusedBits]), bytes);

/** Encodes an OCTET STRING. */
export const octetString = (bytes: Uint8Array): Buffer => tlv(Tag.octetString, bytes);

/** Encodes a BOOLEAN (DER: TRUE is 0xff). */
export const boolean = (v: boolean): Buffer => Buffer.from([Tag.boolean, 1, v ? 0xff : 0]);

/** The DER NULL. */
export const NULL = Buffer.from([Tag.null, 0]);

/** Encodes a UTF8String. */
export const utf8String = (s: string): Buffer => tlv(Tag.utf8String, Buffer.from(s, 'utf8'));

/** Encodes an IA5String (ASCII only; callers validate). */
export const ia5String = (s: string): Buffer => tlv(Tag.ia5String, Buffer.from(s, 'latin1'));

const pad2 = (n: number): string => (n < 10 ? '0' : '') + n;

/** Encodes an X.509 Time: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5), whole seconds, UTC. */
export function time(ms: number): Buffer {
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  const rest =
    pad2(d.getUTCMonth() + 1) + pad2(d.getUTCDate()) + pad2(d.getUTCHours()) + pad2(d.getUTCMinutes()) + pad2(d.getUTCSeconds()) + 'Z';
  if (y >= 1950 && y < 2050) return tlv(Tag.utcTime, Buffer.from(pad2(y % 100) + rest, 'latin1'));
  if (y < 0 || y > 9999) throw new Error(`der: year ${y} out of range`);
  return tlv(Tag.generalizedTime, Buffer.from(String(y).padStart(4, '0') + rest, 'latin1'));
}

/** One decoded TLV: where its header and content sit in the input. */
export interface Tlv {
  readonly tag: number;
  /** Offset of the tag byte. */
  readonly start: number;
  /** Offset of the first content byte. */
  readonly contentStart: number;
  /** Offset just past the content. */
  readonly end: number;
}

/** Reads the TLV at offset; throws on malformed or indefinite-length input (callers catch at the parsing edge). */
export function readTlv(buf: Uint8Array, offset = 0, limit = buf.length): Tlv {
  if (offset + 2 > limit) throw new Error('der: truncated header');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new Error('der: high tag numbers unsupported');
  let len = buf[offset + 1]!;
  let p = offset + 2;
  if (len >= 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error('der: unsupported length form');
    if (p + n > limit) throw new Error('der: truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  if (p + len > limit) throw new Error('der: truncated content');
  return { tag, start: offset, contentStart: p, end: p + len };
}

/** Reads the TLVs directly inside a constructed TLV. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let o = parent.contentStart; o < parent.end;) {
    const t = readTlv(buf, o, parent.end);
    out.push(t);
    o = t.end;
  }
  return out;
}

/** Returns the whole encoding (header and content) of a TLV. */
export const raw = (buf: Uint8Array, t: Tlv): Buffer => Buffer.from(buf.subarray(t.start, t.end));

/** Returns the content bytes of a TLV. */
export const content = (buf: Uint8Array, t: Tlv): Buffer => Buffer.from(buf.subarray(t.contentStart, t.end));

/** Wraps DER in PEM armour with 64-column base64 lines. */
export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines: string[] = [`-----BEGIN ${label}-----`];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  lines.push(`-----END ${label}-----\n`);
  return lines.join('\n');
}

/** Extracts every PEM block with the given label, as DER; other blocks are ignored. */
export function fromPem(label: string, pem: string): Buffer[] {
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, 'g');
  const out: Buffer[] = [];
  for (const m of pem.matchAll(re)) out.push(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  return out;
}
