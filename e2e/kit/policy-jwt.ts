// JWTs for policy e2e tests, made with jose: a signing key whose public half goes inline into a
// RequestAuthentication (`jwks`), valid tokens, and the forged and broken ones Envoy must refuse.
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

/** A token issuer for tests: its inline JWKS and a signer. */
export interface TestIssuer {
  readonly issuer: string;
  readonly kid: string;
  /** `{"keys":[...]}` with the public key, for `jwks:` in a RequestAuthentication. */
  readonly jwks: string;
  /** The public key as PEM (SPKI): what an attacker would use as an HMAC secret. */
  readonly publicPem: string;
  /** Signs `claims` with this issuer's key (RS256); `iss` defaults to the issuer, `iat` to now. */
  sign(claims: JWTPayload, opts?: { kid?: string; alg?: string; key?: CryptoKey | Uint8Array }): Promise<string>;
}

const nowS = () => Math.floor(Date.now() / 1000);

/** Makes an RS256 issuer with one key. */
export async function makeIssuer(issuer: string, kid = 'test-key-1'): Promise<TestIssuer> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const publicPem = await exportSPKI(publicKey);
  return {
    issuer,
    kid,
    jwks: JSON.stringify({ keys: [jwk] }),
    publicPem,
    sign(claims, opts = {}) {
      const alg = opts.alg ?? 'RS256';
      return new SignJWT({ iss: issuer, iat: nowS(), ...claims })
        .setProtectedHeader({ alg, kid: opts.kid ?? kid, typ: 'JWT' })
        .sign(opts.key ?? privateKey);
    },
  };
}

/** A key unrelated to any issuer, to sign tokens nobody trusts. */
export async function strangerKey(): Promise<CryptoKey> {
  return (await generateKeyPair('RS256', { extractable: true })).privateKey;
}

const b64url = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

/** An unsigned token (`alg: none`, empty signature), which no verifier may accept. */
export function unsignedToken(claims: JWTPayload): string {
  return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify({ iat: nowS(), ...claims }))}.`;
}

/** An HS256 token whose HMAC secret is the issuer's public key PEM (the RS256/HS256 confusion attack). */
export function hmacWithPublicKey(iss: TestIssuer, claims: JWTPayload): Promise<string> {
  return iss.sign(claims, { alg: 'HS256', key: new TextEncoder().encode(iss.publicPem) });
}

/** Seconds from now, for `exp` and `nbf`. */
export const inSeconds = (s: number): number => nowS() + s;
