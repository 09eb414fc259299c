// The agent's side of Istio's certificate service: one CreateCertificate call over TLS,
// verifying the control plane against the mesh root, with a token or the current SVID.
import * as grpc from '@grpc/grpc-js';
import { IstioCertificateServiceClient } from '../proto/index.js';

/** How the agent proves who it is on one call. */
export type AgentCredential =
  { readonly kind: 'token'; readonly token: string } | { readonly kind: 'certificate'; readonly keyPem: string; readonly chainPem: string };

/** A failed call: the gRPC status, as the CA or the transport gave it. */
export interface CallFailure {
  readonly code: grpc.status;
  readonly details: string;
}

/** Where the CA is and how to check it. */
export interface CaEndpoint {
  /** host:port */
  readonly address: string;
  /** The mesh root(s), PEM: the control plane's serving certificate must chain to one. */
  readonly rootPem: string;
  /** The name to check the serving certificate against, when it differs from the address's host. */
  readonly serverName?: string;
}

/** Sends one CSR; resolves with the returned chain (leaf first) or the failure. Never rejects. */
export function requestCertificate(
  ca: CaEndpoint,
  credential: AgentCredential,
  req: { readonly csr: string; readonly validitySeconds?: number; readonly timeoutMs: number },
): Promise<{ ok: true; chain: string[] } | { ok: false; error: CallFailure }> {
  const root = Buffer.from(ca.rootPem);
  const creds =
    credential.kind === 'certificate'
      ? grpc.credentials.createSsl(root, Buffer.from(credential.keyPem), Buffer.from(credential.chainPem))
      : grpc.credentials.createSsl(root);
  const options: grpc.ClientOptions = ca.serverName
    ? { 'grpc.ssl_target_name_override': ca.serverName, 'grpc.default_authority': ca.serverName }
    : {};
  // One channel per call: the credential (token or which SVID) changes between calls, and
  // renewals are hours apart, so there is nothing to gain from keeping a connection open.
  const client = new IstioCertificateServiceClient(ca.address, creds, options);
  const md = new grpc.Metadata();
  if (credential.kind === 'token') md.set('authorization', `Bearer ${credential.token}`);
  return new Promise((resolve) => {
    client.createCertificate(
      { csr: req.csr, validityDuration: req.validitySeconds ?? 0, metadata: undefined },
      md,
      // A transport deadline, in wall-clock time as grpc-js wants it; no logic depends on it.
      { deadline: Date.now() + req.timeoutMs },
      (e, r) => {
        client.close();
        resolve(e ? { ok: false, error: { code: e.code, details: e.details } } : { ok: true, chain: r.certChain });
      },
    );
  });
}
