// Test fixture: a CSR service on a real TLS port over loopback, with an ephemeral CA, the
// real authenticator, and a recording logger. Not exported from index.
import * as grpc from '@grpc/grpc-js';
import { createAuthenticator, createTokenVerifier, generateTokenKey, mintToken, trustSourceOf } from '../auth/index.js';
import { createEphemeralCa, generateKeyPair, type CaOptions, type CertificateAuthority, type IssuedSvid } from '../ca/index.js';
import { mustSpiffeId, mustTrustDomain } from '../identity/index.js';
import { createManualClock, unwrap } from '../lib/index.js';
import { createRecordingLogger } from '../observability/index.js';
import { IstioCertificateServiceClient, type IstioCertificateRequest, type IstioCertificateResponse } from '../proto/index.js';
import { createGrpcServer, listen, shutdown } from '../xds/index.js';
import type { RateLimitPolicy } from './rate-limiter.js';
import { optionalClientCertCredentials } from './server-credentials.js';
import { createCsrService, type CsrService } from './service.js';

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
export const TD = mustTrustDomain('cluster.local');
export const CONTROL_PLANE_ID = mustSpiffeId('spiffe://cluster.local/ns/istio-system/sa/meshpilot');
export const SERVER_NAME = 'localhost';

/** A running CSR service and what a test needs to call it and look inside. */
export interface CsrFixture {
  readonly ca: CertificateAuthority;
  readonly clock: ReturnType<typeof createManualClock>;
  readonly log: ReturnType<typeof createRecordingLogger>;
  readonly service: CsrService;
  readonly port: number;
  readonly rootPem: string;
  /** How many times the CA was asked to sign (through the service). */
  signCalls(): number;
  /** What the service counted through its stats: issued, and refused by kind. */
  counted(): { issued: number; refused: Record<string, number> };
  /** Makes the CA answer `not-ready` (or normally again). */
  setNotReady(v: boolean): void;
  token(o?: Partial<Parameters<typeof mintToken>[0]>): Promise<string>;
  /** An SVID issued directly by the CA, with its key PEM. */
  issue(id: string): { svid: IssuedSvid; keyPem: string };
  client(clientCert?: { keyPem: string; chainPem: string }): IstioCertificateServiceClient;
  stop(): Promise<void>;
}

/** Starts a CSR service on 127.0.0.1 (port 0) with a serving certificate for `localhost` from an ephemeral CA. */
export async function startCsrFixture(
  o: { rateLimit?: Partial<RateLimitPolicy>; maxTtlMs?: number; defaultTtlMs?: number; ca?: CaOptions } = {},
): Promise<CsrFixture> {
  const clock = createManualClock(Date.now());
  const ca = createEphemeralCa({ trustDomain: TD, clock, ...o.ca });
  const tokenKey = generateTokenKey();
  const log = createRecordingLogger();
  const authenticator = createAuthenticator({
    tokens: createTokenVerifier({ key: tokenKey, trustDomain: TD, clock }),
    trust: trustSourceOf(ca),
    trustDomain: TD,
    clock,
  });
  let calls = 0;
  let notReady = false;
  const counts = { issued: 0, refused: {} as Record<string, number> };
  const service = createCsrService({
    signer: {
      signSvid: (r) => {
        calls++;
        return notReady ? { ok: false, error: { kind: 'not-ready', message: 'test: CA not ready' } } : ca.signSvid(r);
      },
      trustBundle: () => ca.trustBundle(),
    },
    authenticator,
    maxTtlMs: o.maxTtlMs ?? DAY,
    defaultTtlMs: o.defaultTtlMs ?? HOUR,
    rateLimit: o.rateLimit ?? { burst: 100_000, perSecond: 1 },
    clock,
    log,
    stats: {
      issued: () => void counts.issued++,
      refused: (kind) => void (counts.refused[kind] = (counts.refused[kind] ?? 0) + 1),
    },
  });
  const server = createGrpcServer();
  service.register(server);
  const servingKey = generateKeyPair('ec-p256');
  const serving = unwrap(ca.signSvid({ spiffeId: CONTROL_PLANE_ID, publicKey: servingKey.publicKey, dnsNames: [SERVER_NAME] }));
  const rootPem = ca.trustBundle().pem;
  const creds = optionalClientCertCredentials({
    certChainPem: serving.chainPem.join(''),
    keyPem: servingKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    rootsPem: rootPem,
  });
  const port = await listen(server, '127.0.0.1', 0, creds.credentials);
  const clients: grpc.Client[] = [];
  return {
    ca,
    clock,
    log,
    service,
    port,
    rootPem,
    signCalls: () => calls,
    counted: () => ({ issued: counts.issued, refused: { ...counts.refused } }),
    setNotReady: (v) => {
      notReady = v;
    },
    token: (t = {}) => mintToken({ key: tokenKey, namespace: 'photo-ns', serviceAccount: 'photo-frontend', ttlMs: HOUR, clock, ...t }),
    issue(id) {
      const k = generateKeyPair('ec-p256');
      const svid = unwrap(ca.signSvid({ spiffeId: mustSpiffeId(id), publicKey: k.publicKey }));
      return { svid, keyPem: k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
    },
    client(cert) {
      const creds = cert
        ? grpc.credentials.createSsl(Buffer.from(rootPem), Buffer.from(cert.keyPem), Buffer.from(cert.chainPem))
        : grpc.credentials.createSsl(Buffer.from(rootPem));
      const c = new IstioCertificateServiceClient(`127.0.0.1:${port}`, creds, { 'grpc.ssl_target_name_override': SERVER_NAME });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.close();
      await shutdown(server, 1_000);
      ca.close();
    },
  };
}

/** The outcome of one call: the response or the status code and details. */
export type CallOutcome = { ok: true; response: IstioCertificateResponse } | { ok: false; code: grpc.status; details: string };

/** Calls CreateCertificate with an optional bearer token. */
export function createCertificate(
  client: IstioCertificateServiceClient,
  req: Partial<IstioCertificateRequest>,
  token?: string,
): Promise<CallOutcome> {
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve) => {
    client.createCertificate({ csr: '', validityDuration: 0, metadata: undefined, ...req }, md, { deadline: Date.now() + 10_000 }, (e, r) =>
      resolve(e ? { ok: false, code: e.code, details: e.details } : { ok: true, response: r }),
    );
  });
}

/** Sends raw bytes as the request message (for garbled and hand-encoded requests). */
export function callRaw(client: grpc.Client, bytes: Buffer, token?: string): Promise<CallOutcome> {
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      '/istio.v1.auth.IstioCertificateService/CreateCertificate',
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      md,
      { deadline: Date.now() + 10_000 },
      (e, r) => resolve(e ? { ok: false, code: e.code, details: e.details } : { ok: true, response: { certChain: [String(r?.length)] } }),
    );
  });
}
