// The CSR service, wire-compatible with Istio's `istio.v1.auth.IstioCertificateService/
// CreateCertificate`: a PEM CSR and a requested validity in, the chain out (leaf first,
// root last). The certificate's identity is the caller's proven identity (token or mesh
// SVID as client certificate); the CSR only proposes a key and must name exactly that
// identity, nothing more (DESIGN.md "How a proxy proves who it is").
import * as grpc from '@grpc/grpc-js';
import type { Authenticator, Principal } from '../auth/index.js';
import { MAX_CSR_BYTES, parseCsr, type CertificateAuthority, type CaErrorKind } from '../ca/index.js';
import { DEFAULT_ROOT_NAMESPACE, isReservedIdentity, parseSpiffeId } from '../identity/index.js';
import type { Clock } from '../lib/index.js';
import type { Logger, LogFields } from '../observability/index.js';
import type { IstioCertificateResponse } from '../proto/index.js';
import { createRateLimiter, defaultRateLimit, type RateLimitPolicy, type RateLimiter } from './rate-limiter.js';
import { csrServiceDefinition, isGarbledCsr, type CsrRequest, type IncomingCsrRequest } from './request.js';

/** What the CSR service needs from the CA. */
export type CsrSigner = Pick<CertificateAuthority, 'signSvid' | 'trustBundle'>;

/** Why a certificate request was refused: a closed union mapped to gRPC codes at the edge. */
export type CsrErrorKind =
  | 'garbled'
  | 'unauthenticated'
  | 'rate-limited'
  | 'bad-validity'
  | 'impersonation'
  | 'bad-csr'
  | 'wrong-identity'
  | 'reserved-identity'
  | 'ca-not-ready'
  | 'ca-error';

/** A refusal: the kind for the caller, the message and fields for the log. */
export interface CsrError {
  readonly kind: CsrErrorKind;
  readonly message: string;
  readonly fields?: LogFields;
}

// What the caller is told: a code and a short message that never changes with the cause.
const REPLY: Record<CsrErrorKind, { readonly code: grpc.status; readonly details: string }> = {
  garbled: { code: grpc.status.INVALID_ARGUMENT, details: 'request could not be decoded' },
  unauthenticated: { code: grpc.status.UNAUTHENTICATED, details: 'caller not authenticated' },
  'rate-limited': { code: grpc.status.RESOURCE_EXHAUSTED, details: 'too many certificate requests' },
  'bad-validity': { code: grpc.status.INVALID_ARGUMENT, details: 'invalid validity duration' },
  impersonation: { code: grpc.status.PERMISSION_DENIED, details: 'impersonation is not allowed' },
  'bad-csr': { code: grpc.status.INVALID_ARGUMENT, details: 'invalid certificate request' },
  'wrong-identity': { code: grpc.status.PERMISSION_DENIED, details: 'certificate request names another identity' },
  'reserved-identity': { code: grpc.status.PERMISSION_DENIED, details: 'identity is reserved' },
  'ca-not-ready': { code: grpc.status.UNAVAILABLE, details: 'certificate authority not ready' },
  'ca-error': { code: grpc.status.INTERNAL, details: 'certificate not issued' },
};

/** The CSR service: add it to a gRPC server (the TLS port). */
export interface CsrService {
  register(server: grpc.Server): void;
  /** Per-identity rate limit buckets held now (bounded by the policy's maxKeys). */
  rateLimitBuckets(): number;
}

/** What the service counts: every CSR answered with a certificate, and every refusal by kind (none is sampled). */
export interface CsrStats {
  issued(): void;
  refused(kind: CsrErrorKind): void;
}

/** Creates the CSR service. */
export function createCsrService(deps: {
  signer: CsrSigner;
  authenticator: Authenticator;
  /** Longest validity handed out; longer requests are clamped to it (as Istio does). */
  maxTtlMs: number;
  /** Validity when the request names none. */
  defaultTtlMs: number;
  rateLimit?: Partial<RateLimitPolicy>;
  /** The mesh's root namespace, where the control plane's own service account is reserved; default istio-system. */
  rootNamespace?: string;
  clock: Clock;
  log: Logger;
  stats?: CsrStats;
}): CsrService {
  const reserved = { rootNamespace: deps.rootNamespace ?? DEFAULT_ROOT_NAMESPACE };
  if (!(deps.maxTtlMs > 0 && deps.defaultTtlMs > 0)) throw new Error('csr service: maxTtlMs and defaultTtlMs must be positive');
  const limiter: RateLimiter = createRateLimiter({ ...defaultRateLimit, ...deps.rateLimit }, deps.clock);
  const log = deps.log.child({ service: 'csr' });
  const fail = (kind: CsrErrorKind, message: string, fields?: LogFields): { ok: false; error: CsrError } => ({
    ok: false,
    error: fields ? { kind, message, fields } : { kind, message },
  });

  function ttlOf(req: CsrRequest): { ok: true; ttlMs: number; clamped: boolean } | { ok: false; error: CsrError } {
    const s = req.validitySeconds;
    if (s === undefined) return { ok: true, ttlMs: Math.min(deps.defaultTtlMs, deps.maxTtlMs), clamped: false };
    if (s <= 0) return fail('bad-validity', `validity of ${s} s is not positive`);
    const ms = s * 1000;
    return ms > deps.maxTtlMs ? { ok: true, ttlMs: deps.maxTtlMs, clamped: true } : { ok: true, ttlMs: ms, clamped: false };
  }

  async function issue(req: CsrRequest, caller: Principal) {
    // Whatever the credential (a token, or the control plane's own certificate as a client certificate),
    // no caller gets a certificate for the identity sidecars trust as the control plane.
    if (isReservedIdentity(caller.identity, reserved))
      return fail('reserved-identity', 'caller identity is reserved for the control plane');
    const ttl = ttlOf(req);
    if (!ttl.ok) return ttl;
    // Istio's ImpersonatedIdentity lets a trusted node agent ask for someone else's
    // certificate; meshpilot has no such callers, so it is refused, not ignored.
    if ('ImpersonatedIdentity' in req.metadata) return fail('impersonation', 'request metadata asks to impersonate another identity');
    if (Buffer.byteLength(req.csr, 'utf8') > MAX_CSR_BYTES)
      return fail('bad-csr', `csr of ${Buffer.byteLength(req.csr, 'utf8')} bytes is larger than ${MAX_CSR_BYTES}`);
    const parsed = await parseCsr(req.csr);
    if (!parsed.ok) return fail('bad-csr', parsed.error.message);
    const csr = parsed.value;
    const problems: string[] = [];
    if (csr.uriSans.length !== 1) problems.push(`csr has ${csr.uriSans.length} URI SANs; exactly one is allowed`);
    if (csr.dnsSans.length > 0) problems.push(`csr asks for DNS SANs ${JSON.stringify(csr.dnsSans)}; an SVID has none`);
    // Refused rather than ignored: the SVID would carry none of these anyway, and a client asking for
    // them is misconfigured or probing; Istio agents and meshpilot's own never ask.
    if (csr.otherSans.length > 0) problems.push(`csr asks for SANs ${JSON.stringify(csr.otherSans)}; an SVID has only its URI SAN`);
    if (csr.requestsCa) problems.push(`csr asks for CA rights (${csr.caRequests.join(', ')})`);
    if (problems.length > 0)
      return fail('bad-csr', problems.join('; '), { uriSans: csr.uriSans, dnsSans: csr.dnsSans, otherSans: csr.otherSans });
    const asked = csr.uriSans[0]!;
    if (asked !== caller.identity) {
      const valid = parseSpiffeId(asked);
      return valid.ok
        ? fail('wrong-identity', 'csr names an identity other than the proven one', { asked })
        : fail('bad-csr', `csr URI SAN is not a valid SPIFFE ID: ${valid.error.message}`, { asked, rule: valid.error.rule });
    }
    const signed = deps.signer.signSvid({ spiffeId: caller.identity, publicKey: csr.publicKey, spkiDer: csr.spkiDer, ttlMs: ttl.ttlMs });
    if (!signed.ok) {
      const kind: CsrErrorKind = signed.error.kind === 'not-ready' ? 'ca-not-ready' : 'ca-error';
      return fail(kind, signed.error.message, { caKind: signed.error.kind satisfies CaErrorKind });
    }
    return { ok: true as const, svid: signed.value, ttl, key: csr.keyDescription };
  }

  async function handle(call: grpc.ServerUnaryCall<IncomingCsrRequest, IstioCertificateResponse>) {
    const peer = call.getPeer();
    const reject = (e: CsrError, fields: LogFields = {}) => {
      deps.stats?.refused(e.kind);
      log.warn('csr rejected', { kind: e.kind, peer, ...fields, ...e.fields, cause: e.message });
      return { error: REPLY[e.kind] };
    };
    const req = call.request;
    if (isGarbledCsr(req)) return reject({ kind: 'garbled', message: req.error, fields: { bytes: req.size } });
    const auth = await deps.authenticator.authenticate({
      metadata: call.metadata,
      peerCertificate: call.getAuthContext().sslPeerCertificate,
    });
    if (!auth.ok) return reject({ kind: 'unauthenticated', message: auth.error.message, fields: { authKind: auth.error.kind } });
    const caller = auth.value;
    const who = { identity: caller.identity, via: caller.via };
    // Checked before the CSR is parsed: a replayed request costs one token check, not a signature.
    const taken = limiter.take(caller.identity);
    if (!taken.allowed) {
      // A replay flood must not become a log flood: log the 1st, 10th, 100th ... refusal in a row.
      const n = taken.refusedInRow;
      if (/^10*$/.test(String(n))) return reject({ kind: 'rate-limited', message: 'rate limit exceeded' }, { ...who, refusedInRow: n });
      // Not logged, but counted: the metric sees every refusal.
      deps.stats?.refused('rate-limited');
      return { error: REPLY['rate-limited'] };
    }
    const r = await issue(req, caller);
    if (!r.ok) return reject(r.error, who);
    const { svid, ttl, key } = r;
    deps.stats?.issued();
    log.info('certificate issued', {
      ...who,
      peer,
      serial: svid.serialHex,
      key,
      notAfter: new Date(svid.notAfter).toISOString(),
      requestedSeconds: req.validitySeconds,
      ...(ttl.clamped ? { clampedToMs: ttl.ttlMs } : {}),
    });
    // Istio's response: the leaf, its intermediates, then the root(s) it chains to.
    return { response: { certChain: [...svid.chainPem, ...deps.signer.trustBundle().rootsPem] } };
  }

  return {
    register(server) {
      server.addService(csrServiceDefinition, {
        createCertificate: (
          call: grpc.ServerUnaryCall<IncomingCsrRequest, IstioCertificateResponse>,
          callback: grpc.sendUnaryData<IstioCertificateResponse>,
        ) => {
          handle(call).then(
            (r) => ('error' in r ? callback(r.error) : callback(null, r.response)),
            (e: unknown) => {
              // A bug, not an expected refusal: the caller still gets a status, the log the stack.
              log.error('csr handler failed', { peer: call.getPeer(), cause: e instanceof Error ? e.stack : String(e) });
              callback({ code: grpc.status.INTERNAL, details: 'certificate not issued' });
            },
          );
        },
      });
    },
    rateLimitBuckets: () => limiter.size(),
  };
}
