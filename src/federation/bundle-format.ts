// The SPIFFE bundle format (SPIFFE Trust Domain and Bundle, §4): a JWK Set whose `x509-svid`
// keys each carry one root CA certificate in `x5c`, with the optional `spiffe_sequence` and
// `spiffe_refresh_hint` members. Encoding is for our bundle endpoint; parsing is the edge
// where a foreign bundle becomes a value inner code can trust.
import { X509Certificate, type JsonWebKey } from 'node:crypto';
import { err, ok, type Result } from '../lib/index.js';

/** Why a bundle was refused: a closed set, used as the metric's `reason` label. */
export type BundleProblemKind =
  | 'malformed'
  | 'empty'
  | 'bad-key-use'
  | 'bad-certificate'
  | 'wrong-trust-domain'
  | 'rollback'
  | 'wrong-endpoint-id'
  | 'untrusted-endpoint'
  | 'redirect'
  | 'oversized'
  | 'http-status'
  | 'unreachable'
  | 'unreadable-file';

/** A refused bundle: the kind, and a message naming the member at fault. */
export interface BundleProblem {
  readonly kind: BundleProblemKind;
  readonly message: string;
}

/** A bundle that parsed and passed every check: roots only (JWT-SVID keys are not used by meshpilot). */
export interface SpiffeBundle {
  /** Root certificates, PEM, in the order the bundle lists them. */
  readonly rootsPem: readonly string[];
  readonly sequence?: number;
  /** Seconds, as the publisher suggests. */
  readonly refreshHintSeconds?: number;
  /** `jwt-svid` keys seen and skipped. */
  readonly skippedJwtKeys: number;
}

const problem = (kind: BundleProblemKind, message: string): Result<never, BundleProblem> => err({ kind, message });

/** PEM text of one DER certificate. */
export function derToPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
}

/** Splits concatenated PEM certificates. */
export function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((p) => (p.endsWith('\n') ? p : `${p}\n`)) ?? [];
}

/** Encodes roots as a SPIFFE bundle (one `x509-svid` JWK per root). */
export function encodeSpiffeBundle(b: { rootsPem: readonly string[]; sequence: number; refreshHintSeconds: number }): string {
  const keys = b.rootsPem.map((pem) => {
    const cert = new X509Certificate(pem);
    const jwk = cert.publicKey.export({ format: 'jwk' });
    return { use: 'x509-svid', ...jwk, x5c: [cert.raw.toString('base64')] };
  });
  return `${JSON.stringify({ keys, spiffe_sequence: b.sequence, spiffe_refresh_hint: b.refreshHintSeconds }, null, 2)}\n`;
}

const PUBLIC_MEMBERS: Readonly<Record<string, readonly string[]>> = { EC: ['crv', 'x', 'y'], RSA: ['n', 'e'] };

/**
 * Parses a SPIFFE bundle. Refused: not a JSON object, `keys` missing or not a list, a key
 * without `use` (§4.2.2: it MUST be set) or with a `use` other than `x509-svid` and
 * `jwt-svid`, an `x509-svid` key whose `x5c` is not exactly one CA certificate or whose
 * public key members do not match that certificate, and a bundle with no root at all.
 * `jwt-svid` keys are skipped: meshpilot does not use JWT-SVIDs.
 */
export function parseSpiffeBundle(text: string): Result<SpiffeBundle, BundleProblem> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return problem('malformed', `not JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    return problem('malformed', 'a bundle must be a JSON object (a JWK Set)');
  const set = doc as Record<string, unknown>;
  if (!Array.isArray(set.keys)) return problem('malformed', 'keys: must be a list of JWKs');
  const seq = set.spiffe_sequence;
  if (seq !== undefined && !(typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0))
    return problem('malformed', `spiffe_sequence: must be a non-negative integer, got ${JSON.stringify(seq)}`);
  const hint = set.spiffe_refresh_hint;
  if (hint !== undefined && !(typeof hint === 'number' && Number.isSafeInteger(hint) && hint >= 0))
    return problem('malformed', `spiffe_refresh_hint: must be a non-negative integer (seconds), got ${JSON.stringify(hint)}`);
  const rootsPem: string[] = [];
  let skippedJwtKeys = 0;
  for (const [i, key] of set.keys.entries()) {
    const at = `keys[${i}]`;
    if (typeof key !== 'object' || key === null || Array.isArray(key)) return problem('malformed', `${at}: must be a JWK object`);
    const k = key as Record<string, unknown>;
    if (k.use === 'jwt-svid') {
      skippedJwtKeys++;
      continue;
    }
    if (k.use === undefined) return problem('bad-key-use', `${at}.use: must be set (SPIFFE bundle §4.2.2)`);
    if (k.use !== 'x509-svid')
      return problem(
        'bad-key-use',
        `${at}.use: ${JSON.stringify(k.use)} is not x509-svid (meshpilot refuses bundles with keys of other uses)`,
      );
    const root = x509Root(k, at);
    if (!root.ok) return root;
    rootsPem.push(root.value);
  }
  if (rootsPem.length === 0) return problem('empty', 'the bundle holds no x509-svid key: it would trust nothing');
  return ok({
    rootsPem,
    ...(seq !== undefined ? { sequence: seq as number } : {}),
    ...(hint !== undefined ? { refreshHintSeconds: hint as number } : {}),
    skippedJwtKeys,
  });
}

function x509Root(k: Record<string, unknown>, at: string): Result<string, BundleProblem> {
  if (!Array.isArray(k.x5c) || k.x5c.length !== 1 || typeof k.x5c[0] !== 'string')
    return problem('bad-certificate', `${at}.x5c: an x509-svid key carries exactly one certificate (X509-SVID §6)`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(k.x5c[0], 'base64'));
  } catch (e) {
    return problem('bad-certificate', `${at}.x5c[0]: not a DER certificate: ${(e as Error).message}`);
  }
  if (!cert.ca) return problem('bad-certificate', `${at}.x5c[0]: ${cert.subject.replace(/\n/g, ', ')} is not a CA certificate`);
  const jwk = cert.publicKey.export({ format: 'jwk' }) as JsonWebKey & Record<string, unknown>;
  if (k.kty !== jwk.kty)
    return problem('bad-certificate', `${at}.kty: ${JSON.stringify(k.kty)} does not match the certificate's key (${jwk.kty})`);
  for (const m of PUBLIC_MEMBERS[String(jwk.kty)] ?? [])
    if (k[m] !== jwk[m]) return problem('bad-certificate', `${at}.${m}: does not match the public key of x5c[0]`);
  return ok(derToPem(cert.raw));
}
