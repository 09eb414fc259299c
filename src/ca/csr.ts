// CSR parsing for the CSR service: pkijs reads the PKCS#10 structure and verifies its
// signature; node:crypto imports the key. The identity a certificate gets never comes
// from the CSR (DESIGN.md); the SANs are returned so the caller can compare them.
import { createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { err, ok } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import { describeKey } from './keys.js';
import type { KeyDescription } from './keys.js';
import { caError } from './types.js';
import type { CaError } from './types.js';
import { KeyUsage, OID } from './x509.js';

/** Largest CSR PEM accepted, in bytes. */
export const MAX_CSR_BYTES = 64 * 1024;

/** What a verified CSR asks for. */
export interface ParsedCsr {
  readonly publicKey: KeyObject;
  /** The key's SubjectPublicKeyInfo DER, as the CSR carries it (signSvid takes it as is, without re-exporting the key). */
  readonly spkiDer: Uint8Array;
  readonly uriSans: readonly string[];
  readonly dnsSans: readonly string[];
  /** SANs of any other type (IP address, email, directory name, ...), described as `type: value`; an SVID has none. */
  readonly otherSans: readonly string[];
  /** Whether the CSR asks for any CA right (the CSR service refuses those). */
  readonly requestsCa: boolean;
  /** Each CA right asked for: basicConstraints CA=true, keyCertSign or cRLSign key usage, name constraints. */
  readonly caRequests: readonly string[];
  readonly keyDescription: KeyDescription;
}

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const NAME_CONSTRAINTS = '2.5.29.30';

// GeneralName choice tags (RFC 5280 4.2.1.6) named for messages; URI (6) and DNS (2) are read apart.
const SAN_TYPES: Readonly<Record<number, string>> = {
  0: 'otherName',
  1: 'email',
  3: 'x400Address',
  4: 'directoryName',
  5: 'ediPartyName',
  7: 'IP address',
  8: 'registeredID',
};

// What makes an extension request a request for CA rights, one entry per extension: the SVID
// profile (DESIGN.md) has CA false and no keyCertSign or cRLSign, and only CAs carry name constraints.
const CA_RIGHTS: Readonly<Record<string, (ext: pkijs.Extension) => string[]>> = {
  [OID.basicConstraints]: (ext) => ((ext.parsedValue as pkijs.BasicConstraints | undefined)?.cA ? ['basicConstraints CA=true'] : []),
  [OID.keyUsage]: (ext) => {
    const bits = keyUsageBits(ext);
    return [
      ...(bits.has(KeyUsage.keyCertSign) ? ['keyUsage keyCertSign'] : []),
      ...(bits.has(KeyUsage.cRLSign) ? ['keyUsage cRLSign'] : []),
    ];
  },
  [NAME_CONSTRAINTS]: () => ['nameConstraints'],
};

// The bits set in a keyUsage BIT STRING, numbered as in RFC 5280 4.2.1.3 (bit 0 is the first bit).
function keyUsageBits(ext: pkijs.Extension): Set<number> {
  const parsed = asn1js.fromBER(ext.extnValue.valueBlock.valueHexView);
  if (parsed.offset === -1 || !(parsed.result instanceof asn1js.BitString)) throw new Error('keyUsage is not a BIT STRING');
  const bytes = parsed.result.valueBlock.valueHexView;
  const bits = new Set<number>();
  for (let i = 0; i < bytes.length * 8; i++) if (bytes[i >> 3]! & (0x80 >> (i & 7))) bits.add(i);
  return bits;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

// Returns the DER of the PEM's only block, which must be a CERTIFICATE REQUEST with nothing but
// whitespace around it: a second block (even of another type), stray text or base64 junk is refused,
// so that what was checked is all that was sent.
function onlyCsrDer(pem: string): Result<Uint8Array, CaError> {
  const blocks = [...pem.matchAll(PEM_BLOCK)];
  const begins = pem.split('-----BEGIN ').length - 1;
  if (blocks.length !== 1 || begins !== 1 || blocks[0]![1] !== 'CERTIFICATE REQUEST')
    return bad(
      `expected one PEM 'CERTIFICATE REQUEST' block, found ${begins} PEM block(s)${blocks.length > 0 ? ` (${blocks.map((b) => b[1]).join(', ')})` : ''}`,
    );
  const outside = pem.replace(PEM_BLOCK, '');
  if (outside.trim() !== '') return bad('csr PEM has text outside its block');
  const body = blocks[0]![2]!.replace(/\s+/g, '');
  if (!BASE64.test(body) || body.length % 4 !== 0) return bad('csr PEM block is not valid base64');
  const der = Buffer.from(body, 'base64');
  // asn1js reads the first element and reports where it ended: anything after it was not signed.
  // It reports most malformed DER as a result, but throws on some (a GeneralizedTime that is not a
  // time, found by the CSR fuzzer): both are a refusal, never an exception out of the parser.
  let outer: ReturnType<typeof asn1js.fromBER>;
  try {
    outer = asn1js.fromBER(der);
  } catch (e) {
    return bad(`csr is not valid DER (${(e as Error).message})`);
  }
  if (outer.offset === -1) return bad(`csr is not valid DER (${outer.result.error})`);
  if (outer.offset !== der.length) return bad(`csr has ${der.length - outer.offset} bytes after its DER`);
  return ok(der);
}

const bad = (m: string): Result<never, CaError> => err(caError('bad-csr', m));

/** Parses a PEM PKCS#10 CSR, verifies its signature and key strength, and returns the key and requested SANs. */
export async function parseCsr(pem: string): Promise<Result<ParsedCsr, CaError>> {
  if (Buffer.byteLength(pem, 'utf8') > MAX_CSR_BYTES) return bad(`csr larger than ${MAX_CSR_BYTES} bytes`);
  const envelope = onlyCsrDer(pem);
  if (!envelope.ok) return envelope;
  const der = envelope.value;
  let csr: pkijs.CertificationRequest;
  try {
    csr = pkijs.CertificationRequest.fromBER(der);
  } catch (e) {
    return bad(`csr is not valid PKCS#10 (${(e as Error).message})`);
  }
  let publicKey: KeyObject;
  let spkiDer: Uint8Array;
  try {
    spkiDer = Buffer.from(csr.subjectPublicKeyInfo.toSchema().toBER());
    publicKey = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
    // Canonical form: what the certificate carries is exactly the key that was checked.
    spkiDer = publicKey.export({ type: 'spki', format: 'der' });
  } catch (e) {
    return bad(`csr public key cannot be read (${(e as Error).message})`);
  }
  const desc = describeKey(publicKey);
  if (!desc.ok) return bad(`csr key rejected: ${desc.error}`);
  let verified: boolean;
  try {
    verified = await csr.verify();
  } catch (e) {
    return bad(`csr signature cannot be verified (${(e as Error).message})`);
  }
  if (!verified) return bad('csr signature does not verify with its own public key');
  const uriSans: string[] = [];
  const dnsSans: string[] = [];
  const otherSans: string[] = [];
  const caRequests: string[] = [];
  try {
    for (const attr of csr.attributes ?? []) {
      if (attr.type !== EXTENSION_REQUEST) continue;
      for (const v of attr.values) {
        const exts = new pkijs.Extensions({ schema: v });
        for (const ext of exts.extensions) {
          if (ext.extnID === OID.subjectAltName) {
            const names = ext.parsedValue as pkijs.AltName | undefined;
            for (const n of names?.altNames ?? []) {
              if (n.type === 6) uriSans.push(String(n.value));
              else if (n.type === 2) dnsSans.push(String(n.value));
              else otherSans.push(`${SAN_TYPES[n.type] ?? `type ${n.type}`}: ${describeSanValue(n)}`);
            }
          }
          caRequests.push(...(CA_RIGHTS[ext.extnID]?.(ext) ?? []));
        }
      }
    }
  } catch (e) {
    return bad(`csr extension request is malformed (${(e as Error).message})`);
  }
  // Other extension requests (extended key usage, key usage without CA bits, policies...) are
  // ignored, as Istio's CA and SPIRE do: the SVID's extensions come from the CA's profile.
  return ok({ publicKey, spkiDer, uriSans, dnsSans, otherSans, requestsCa: caRequests.length > 0, caRequests, keyDescription: desc.value });
}

// A readable SAN value for the log: IP addresses as text, strings as they are, structures as their type.
function describeSanValue(n: pkijs.GeneralName): string {
  const v: unknown = n.value;
  if (n.type === 7 && v instanceof asn1js.OctetString) {
    const b = Buffer.from(v.valueBlock.valueHexView);
    if (b.length === 4) return [...b].join('.');
    if (b.length === 16) return (b.toString('hex').match(/.{4}/g) ?? []).map((g) => parseInt(g, 16).toString(16)).join(':');
  }
  return typeof v === 'string' ? v : '(structured)';
}
