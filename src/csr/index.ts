export { createCsrService } from './service.js';
export type { CsrService, CsrSigner, CsrError, CsrErrorKind, CsrStats } from './service.js';
export { createRateLimiter, defaultRateLimit } from './rate-limiter.js';
export type { RateLimiter, RateLimitPolicy } from './rate-limiter.js';
export { makeCsr } from './make-csr.js';
export type { MakeCsrRequest } from './make-csr.js';
export { optionalClientCertCredentials } from './server-credentials.js';
export type { ServingMaterial, UpdatableServerCredentials } from './server-credentials.js';
