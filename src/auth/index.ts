export { createAuthenticator } from './authenticator.js';
export type { Authenticator, AuthFailure, AuthFailureKind, CallCredentials, Principal, TrustSource } from './authenticator.js';
export {
  createTokenVerifier,
  generateTokenKey,
  loadOrCreateTokenKey,
  mintToken,
  TOKEN_AUDIENCE,
  TOKEN_ISSUER,
  TOKEN_KEY_FILE,
} from './tokens.js';
export type { TokenError, TokenErrorKind, TokenVerifier } from './tokens.js';
export { trustSourceOf } from './trust-source.js';
