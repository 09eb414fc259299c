// Verifies a JWT against the jwt_authn config a workload receives, as Envoy's jwt_authn filter
// would: the provider is chosen by the token's (unverified) issuer, the signature is checked with
// that provider's inline keys only, and `exp` / `nbf` are checked with Envoy's default clock skew
// (60 s). `alg: none`, an HMAC token signed with a public key, and an unknown `kid` all fail.
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose';
import { JwtAuthentication } from '../proto/index.js';
import type { InboundConfig, JwtClaims } from './evaluate.js';
import { JWT_FILTER } from './matchers.js';

// The algorithms Envoy's jwt_verify_lib accepts.
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'HS256', 'HS384', 'HS512'];
const CLOCK_SKEW_S = 60;

function toClaims(p: JWTPayload): JwtClaims {
  const { iss, sub, aud, ...rest } = p;
  return {
    iss: String(iss ?? ''),
    ...(sub !== undefined ? { sub } : {}),
    ...(aud !== undefined ? { aud } : {}),
    ...(typeof rest.azp === 'string' ? { azp: rest.azp } : {}),
    claims: rest,
  };
}

/**
 * Returns what jwt_authn would conclude about a token: its claims when a provider for its issuer
 * verifies it (or when no provider lists the issuer, which the evaluator then refuses), else `invalid`.
 */
export async function verifyJwt(config: InboundConfig, token: string, nowMs: number): Promise<JwtClaims | 'invalid'> {
  let unverified: JWTPayload;
  try {
    decodeProtectedHeader(token);
    unverified = decodeJwt(token);
  } catch {
    return 'invalid';
  }
  if (typeof unverified.iss !== 'string') return 'invalid';
  const filter = config.httpFilters.find((f) => f.name === JWT_FILTER);
  if (!filter) return toClaims(unverified); // no jwt_authn: the token is never looked at
  const providers = Object.values(JwtAuthentication.decode(filter.typedConfig.value).providers).filter((p) => p.issuer === unverified.iss);
  if (providers.length === 0) return toClaims(unverified);
  for (const p of providers) {
    const jwks = p.localJwks?.inlineString;
    if (!jwks) continue;
    try {
      const keys = createLocalJWKSet(JSON.parse(jwks) as Parameters<typeof createLocalJWKSet>[0]);
      const { payload } = await jwtVerify(token, keys, {
        algorithms: ALGORITHMS,
        currentDate: new Date(nowMs),
        clockTolerance: CLOCK_SKEW_S,
        issuer: p.issuer,
      });
      return toClaims(payload);
    } catch (e) {
      if (e instanceof errors.JOSEError || e instanceof SyntaxError || e instanceof TypeError) continue;
      throw e;
    }
  }
  return 'invalid';
}
