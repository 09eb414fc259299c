// RequestAuthentication → Envoy's jwt_authn filter. Each jwtRule becomes a provider with inline
// keys (a jwksUri is fetched by the control plane and inlined, so the proxy never fetches); the
// requirement is Istio's: any one provider's valid token, or no token at all (`allow_missing`). An
// invalid token, or one from an issuer no rule lists, is refused with 401. Every provider writes
// the verified payload to the same metadata key, where the RBAC filter reads claims.
import type { MeshModel, RequestAuthentication, WorkloadEntry } from '../model/index.js';
import { JwtAuthentication, packAny, type DeepPartialLike, type JwtProvider } from '../proto/index.js';
import type { PolicyFilter } from './authorization.js';
import { diagnosticAt, type PolicyDiagnostic } from './diagnostics.js';
import { openIdDiscoveryUrl, type JwksVia } from './jwks-discovery.js';
import { JWT_FILTER, JWT_PAYLOAD_KEY } from './matchers.js';

/** Returns the last good JWKS (JSON text) fetched from a URI, or undefined when there is none yet. */
export type JwksSource = (uri: string, via?: JwksVia) => string | { readonly error: string } | undefined;

/** The jwt_authn filter for a workload (undefined when no RequestAuthentication applies) and every problem found. */
export interface CompiledRequestAuthentication {
  readonly httpFilter: PolicyFilter | undefined;
  readonly diagnostics: readonly PolicyDiagnostic[];
}

const JWT_TYPE = 'envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';
const KIND = 'RequestAuthentication';

/**
 * A key set no token can verify against: one RSA public key whose private key was thrown away when
 * it was made. Providers whose keys are unavailable get it, so their tokens are refused (401) and no
 * other key is ever used in its place (Istio does the same with its "fake JWKS").
 */
export const UNUSABLE_JWKS = JSON.stringify({
  keys: [
    {
      kty: 'RSA',
      kid: 'meshpilot-jwks-unavailable',
      alg: 'RS256',
      use: 'sig',
      e: 'AQAB',
      n: 'zLsLS71BXargwEB3fCNugmySwOsKOVEgjZdm_wv5TzsAaFDVPkidytPmM16iDkgrpGdNnc2WkrIPoV9svLN6HDl6cX6p8TsfO1KEUgNfQQVcbgZehL99THDFGNm-awyxo_qLhRPItHoU12hiSFEcdPlbzB2MpU0o9vC8QpuchoFG2G3a0EtEy1MheE-dSjdQ2TH2Kz4HTnGViRQZdcEXGL80NAj5_iC8q7QzqVeZSbamB_RpEe4AQgGtIyRF6u9MYbxmL4iQoLqiafyrszAOMbXyDzB4yfsWj0JoJ87rv0TxvkBhgJ_IGJCJ8LhP-njsC7rEAsGCTh46VrXEnJEDAQ',
    },
  ],
});

/** Checks that text is a JWKS Envoy can use: JSON with a non-empty `keys` array of objects with a `kty`. */
export function checkJwks(text: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) return 'not a JWKS: no "keys" array, or it is empty';
  if (!keys.every((k) => k && typeof k === 'object' && typeof (k as { kty?: unknown }).kty === 'string'))
    return 'not a JWKS: a key has no "kty"';
  return undefined;
}

/** The name of the provider for one jwtRule. */
export function jwtProviderName(ra: { readonly namespace: string; readonly name: string }, rule: number): string {
  return `ns[${ra.namespace}]-requestauthentication[${ra.name}]-jwtrule[${rule}]`;
}

// Claims that hold space-delimited lists (OAuth scopes); normalized to lists so `request.auth.claims[scope]` matches one scope, as in Istio.
const SPACE_DELIMITED_CLAIMS = ['scope', 'permission'];

function provider(ra: RequestAuthentication, i: number, fetchJwks: JwksSource, diags: PolicyDiagnostic[]): DeepPartialLike<JwtProvider> {
  const rule = ra.jwtRules[i]!;
  const path = `spec.jwtRules[${i}]`;
  let jwks = rule.jwks;
  if (jwks === undefined) {
    // Without jwks or jwksUri, Istio finds the keys by OpenID discovery from the issuer.
    const discovery = rule.jwksUri === undefined ? openIdDiscoveryUrl(rule.issuer) : undefined;
    const fetched = discovery !== undefined ? fetchJwks(discovery, 'discovery') : fetchJwks(rule.jwksUri!);
    const problem = fetched === undefined ? 'no keys fetched yet' : typeof fetched === 'object' ? fetched.error : checkJwks(fetched);
    if (problem) {
      diags.push(
        diagnosticAt(
          ra,
          KIND,
          discovery !== undefined ? `${path}.issuer` : `${path}.jwksUri`,
          'error',
          discovery !== undefined
            ? `keys of issuer '${rule.issuer}' by OpenID discovery (${discovery}) unavailable (${problem}): its tokens are refused until they are fetched`
            : `keys of ${rule.jwksUri} unavailable (${problem}): tokens from issuer '${rule.issuer}' are refused until they are fetched`,
        ),
      );
    } else jwks = fetched as string;
  } else if (checkJwks(jwks)) {
    diags.push(diagnosticAt(ra, KIND, `${path}.jwks`, 'error', `${checkJwks(jwks)}: tokens from issuer '${rule.issuer}' are refused`));
    jwks = undefined;
  }
  const located = rule.fromHeaders.length > 0 || rule.fromParams.length > 0 || rule.fromCookies.length > 0;
  return {
    issuer: rule.issuer,
    audiences: [...rule.audiences],
    localJwks: { inlineString: jwks ?? UNUSABLE_JWKS },
    forward: rule.forwardOriginalToken,
    // Without locations, Envoy's (and Istio's) defaults, written out: `Authorization: Bearer <token>` or `?access_token=`.
    fromHeaders: located
      ? rule.fromHeaders.map((h) => ({ name: h.name, valuePrefix: h.prefix ?? '' }))
      : [{ name: 'Authorization', valuePrefix: 'Bearer ' }],
    fromParams: located ? [...rule.fromParams] : ['access_token'],
    fromCookies: [...rule.fromCookies],
    forwardPayloadHeader: rule.outputPayloadToHeader ?? '',
    payloadInMetadata: JWT_PAYLOAD_KEY,
    normalizePayloadInMetadata: { spaceDelimitedClaims: [...new Set([...SPACE_DELIMITED_CLAIMS, ...(rule.spaceDelimitedClaims ?? [])])] },
    claimToHeaders: rule.outputClaimToHeaders.map((c) => ({ headerName: c.header, claimName: c.claim })),
  };
}

/**
 * Compiles the RequestAuthentications that apply to a workload into one jwt_authn filter: a provider
 * per jwtRule, required as "any valid token, or none". `fetchJwks` supplies the last good keys of a
 * jwksUri; without them the provider gets keys that verify nothing (fail closed, never a fallback).
 */
export function compileRequestAuthentication(
  model: MeshModel,
  workload: WorkloadEntry,
  fetchJwks: JwksSource,
): CompiledRequestAuthentication {
  const diagnostics: PolicyDiagnostic[] = [];
  const providers: Record<string, DeepPartialLike<JwtProvider>> = {};
  for (const ra of model.requestAuthenticationsFor(workload)) {
    ra.jwtRules.forEach((_, i) => {
      providers[jwtProviderName(ra, i)] = provider(ra, i, fetchJwks, diagnostics);
    });
  }
  const names = Object.keys(providers).sort();
  if (names.length === 0) return { httpFilter: undefined, diagnostics };
  const config = {
    providers: Object.fromEntries(names.map((n) => [n, providers[n]!])),
    rules: [
      {
        match: { prefix: '/' },
        requires: { requiresAny: { requirements: [...names.map((providerName) => ({ providerName })), { allowMissing: {} }] } },
      },
    ],
  };
  return { httpFilter: { name: JWT_FILTER, typedConfig: packAny(JWT_TYPE, JwtAuthentication, config) }, diagnostics };
}
