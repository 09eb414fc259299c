// CSR parsing for the CSR service: pkijs reads the PKCS#10 structure and verifies its
// signature; node:crypto imports the key. The identity a certificate gets never comes
// from the CSR (DESIGN.md); the SANs are returned so the caller can compare them.
import { createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import * as pkijs from 'pkijs';
import { err, ok } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import { fromPem } from './der.js';
import { describeKey } from './keys.js';
import type { KeyDescription } from './keys.js';
import { caError } from './types.js';
import type { CaError } from './types.js';
import { OID } from './x509.js';

/** Largest CSR PEM accepted, in bytes. */
export const MAX_CSR_BYTES = 64 * 1024;

/** What a verified CSR asks for. */
export interface ParsedCsr {
  readonly publicKey: KeyObject;
  /** The key's SubjectPublicKeyInfo DER, as the CSR carries it (signSvid takes it as is, without re-exporting the key). */
  readonly spkiDer: Uint8Array;
  readonly uriSans: readonly string[];
  readonly dnsSans: readonly string[];
  /** Whether the CSR asks for basicConstraints CA=true (the CSR service refuses those). */
  readonly requestsCa: boolean;
  readonly keyDescription: KeyDescription;
}

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';

const bad = (m: string): Result<never, CaError> => err(caError('bad-csr', m));

/** Parses a PEM PKCS#10 CSR, verifies its signature and key strength, and returns the key and requested SANs. */
export async function parseCsr(pem: string): Promise<Result<ParsedCsr, CaError>> {
  if (Buffer.byteLength(pem, 'utf8') > MAX_CSR_BYTES) return bad(`csr larger than ${MAX_CSR_BYTES} bytes`);
  const ders = fromPem('CERTIFICATE REQUEST', pem);
  if (ders.length !== 1) return bad(`expected one PEM 'CERTIFICATE REQUEST' block, found ${ders.length}`);
  const der = ders[0]!;
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
  let requestsCa = false;
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
              if (n.type === 2) dnsSans.push(String(n.value));
            }
          }
          if (ext.extnID === OID.basicConstraints) {
            const bc = ext.parsedValue as pkijs.BasicConstraints | undefined;
            if (bc?.cA) requestsCa = true;
          }
        }
      }
    }
  } catch (e) {
    return bad(`csr extension request is malformed (${(e as Error).message})`);
  }
  return ok({ publicKey, spkiDer, uriSans, dnsSans, requestsCa, keyDescription: desc.value });
}
