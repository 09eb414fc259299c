// Where a jwtRule's keys come from when it names only an issuer: OpenID discovery.

/** How a URI leads to keys: it is the JWKS, or an OpenID discovery document naming the JWKS. */
export type JwksVia = 'jwks' | 'discovery';

/** The discovery document of an issuer, as Istio and OpenID Connect Discovery 1.0 §4 place it. */
export function openIdDiscoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}
