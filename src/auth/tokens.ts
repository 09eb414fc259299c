// Proxy credentials: short, signed tokens scoped to one service account, like Kubernetes
// service account tokens (iss, aud, sub = system:serviceaccount:<ns>:<sa>, exp), made
// and checked with jose. Only ES256 is accepted: `alg: none`, HMAC and everything else
// are refused by the verifier, whatever the token's header says.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { writeFileAtomic } from '../ca/index.js';
import {
  DEFAULT_ROOT_NAMESPACE,
  isReservedIdentity,
  reservedServiceAccount,
  workloadId,
  type SpiffeId,
  type TrustDomain,
} from '../identity/index.js';
import { err, ok, type Clock, type Result } from '../lib/index.js';

/** The file in the state directory that holds the token signing key (PKCS#8 PEM, 0600). */
export const TOKEN_KEY_FILE = 'token-signing-key.pem';
/** Default issuer and audience of proxy tokens. */
export const TOKEN_ISSUER = 'meshpilot';
export const TOKEN_AUDIENCE = 'meshpilot';
const ALG = 'ES256';

/** Loads the token signing key from the state directory, making it on first use. */
export function loadOrCreateTokenKey(stateDir: string): Result<KeyObject> {
  const path = join(stateDir, TOKEN_KEY_FILE);
  if (existsSync(path)) {
    try {
      const key = createPrivateKey(readFileSync(path));
      if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
        return err(`${path}: not an ECDSA P-256 key`);
      return ok(key);
    } catch (e) {
      return err(`${path}: ${(e as Error).message}`);
    }
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const w = writeFileAtomic(path, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return w.ok ? ok(privateKey) : err(w.error.message);
}

/** Makes a fresh in-memory signing key (ephemeral mode and tests). */
export function generateTokenKey(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

/**
 * Mints a token for one service account; rejects for the control plane's reserved one, which
 * callers check first with reservedServiceAccount (verifiers would refuse the token anyway).
 */
export async function mintToken(o: {
  key: KeyObject;
  namespace: string;
  serviceAccount: string;
  ttlMs: number;
  clock: Clock;
  issuer?: string;
  audience?: string;
  /** The mesh's root namespace; default istio-system. */
  rootNamespace?: string;
}): Promise<string> {
  const reserved = reservedServiceAccount(o.namespace, o.serviceAccount, { rootNamespace: o.rootNamespace ?? DEFAULT_ROOT_NAMESPACE });
  if (reserved) throw new Error(`no token for ${reserved}`);
  const now = Math.floor(o.clock.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: ALG, typ: 'JWT' })
    .setIssuer(o.issuer ?? TOKEN_ISSUER)
    .setAudience(o.audience ?? TOKEN_AUDIENCE)
    .setSubject(`system:serviceaccount:${o.namespace}:${o.serviceAccount}`)
    .setIssuedAt(now)
    .setNotBefore(now - 60)
    .setExpirationTime(now + Math.ceil(o.ttlMs / 1000))
    .sign(o.key);
}

/** Why a token was refused: stable kinds for logs and metrics. */
export type TokenErrorKind =
  | 'malformed'
  | 'bad-signature'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-audience'
  | 'wrong-issuer'
  | 'bad-algorithm'
  | 'bad-subject'
  | 'reserved-identity';

/** A refused token: its kind and the detail for the log. */
export interface TokenError {
  readonly kind: TokenErrorKind;
  readonly message: string;
}

/** Checks tokens and turns them into the SPIFFE ID of their service account. */
export interface TokenVerifier {
  verify(token: string): Promise<Result<SpiffeId, TokenError>>;
  /** The same check, with when the token stops being valid (its `exp`, in ms). */
  verifyWithExpiry(token: string): Promise<Result<{ readonly identity: SpiffeId; readonly expiresAt: number }, TokenError>>;
}

/** Creates a verifier for tokens signed by `key` (its public half is used); tokens for a reserved identity are refused. */
export function createTokenVerifier(o: {
  key: KeyObject;
  trustDomain: TrustDomain;
  clock: Clock;
  issuer?: string;
  audience?: string;
  /** The mesh's root namespace, where the control plane's own service account is reserved; default istio-system. */
  rootNamespace?: string;
}): TokenVerifier {
  const reserved = { rootNamespace: o.rootNamespace ?? DEFAULT_ROOT_NAMESPACE };
  const publicKey = o.key.type === 'private' ? createPublicKey(o.key) : o.key;
  const verifier: TokenVerifier = {
    async verify(token) {
      const r = await verifier.verifyWithExpiry(token);
      return r.ok ? ok(r.value.identity) : r;
    },
    async verifyWithExpiry(token) {
      try {
        const { payload } = await jwtVerify(token, publicKey, {
          algorithms: [ALG],
          issuer: o.issuer ?? TOKEN_ISSUER,
          audience: o.audience ?? TOKEN_AUDIENCE,
          currentDate: new Date(o.clock.now()),
          requiredClaims: ['exp', 'sub'],
        });
        const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(payload.sub ?? '');
        if (!m)
          return err({ kind: 'bad-subject', message: `subject ${JSON.stringify(payload.sub)} is not system:serviceaccount:<ns>:<sa>` });
        const id = workloadId(o.trustDomain, m[1]!, m[2]!);
        if (!id.ok) return err({ kind: 'bad-subject', message: id.error.message });
        // A token minted for the control plane's identity (by mistake or with a stolen key) must not make its holder the control plane.
        if (isReservedIdentity(id.value, reserved))
          return err({ kind: 'reserved-identity', message: `token subject ${payload.sub} is the control plane's reserved identity` });
        return ok({ identity: id.value, expiresAt: (payload.exp ?? 0) * 1000 });
      } catch (e) {
        return err(classify(e));
      }
    },
  };
  return verifier;
}

function classify(e: unknown): TokenError {
  const message = (e as Error).message;
  if (e instanceof joseErrors.JWTExpired) return { kind: 'expired', message };
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    if (e.claim === 'aud') return { kind: 'wrong-audience', message };
    if (e.claim === 'iss') return { kind: 'wrong-issuer', message };
    if (e.claim === 'nbf' || e.claim === 'iat') return { kind: 'not-yet-valid', message };
    return { kind: 'malformed', message };
  }
  if (e instanceof joseErrors.JOSEAlgNotAllowed || e instanceof joseErrors.JOSENotSupported) return { kind: 'bad-algorithm', message };
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return { kind: 'bad-signature', message };
  return { kind: 'malformed', message };
}
