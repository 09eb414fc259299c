// The agent's side of Istio's certificate service: one CreateCertificate call over TLS,
// verifying the control plane against the mesh root, with a token or the current SVID.
import { isIP } from 'node:net';
import type { PeerCertificate } from 'node:tls';
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
  /** The control plane's SPIFFE ID: its certificate's one URI SAN must be exactly this (as sidecars pin it). */
  readonly controlPlaneId: string;
  /** The TLS server name (SNI) and authority to send, when it differs from the address's host; not what is checked. */
  readonly serverName?: string;
}

/**
 * Checks the control plane's certificate (already chained to the mesh root by TLS) by its SPIFFE ID,
 * never by host name: under a plug-in CA from a shared PKI, any certificate for that host name would
 * otherwise receive the agent's token. Returns the error that ends the handshake, or undefined.
 */
export function checkControlPlaneId(expected: string, cert: PeerCertificate): Error | undefined {
  const uris = (cert.subjectaltname ?? '')
    .split(', ')
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
  if (uris.length === 1 && uris[0] === expected) return undefined;
  return Object.assign(new Error(`control plane certificate names ${JSON.stringify(uris)}, not ${expected}`), {
    code: 'ERR_MESHPILOT_CONTROL_PLANE_ID',
  });
}

/** Sends one CSR; resolves with the returned chain (leaf first) or the failure. Never rejects. */
export function requestCertificate(
  ca: CaEndpoint,
  credential: AgentCredential,
  req: { readonly csr: string; readonly validitySeconds?: number; readonly timeoutMs: number },
): Promise<{ ok: true; chain: string[] } | { ok: false; error: CallFailure }> {
  const root = Buffer.from(ca.rootPem);
  const verify = { checkServerIdentity: (_host: string, cert: PeerCertificate) => checkControlPlaneId(ca.controlPlaneId, cert) };
  const creds =
    credential.kind === 'certificate'
      ? grpc.credentials.createSsl(root, Buffer.from(credential.keyPem), Buffer.from(credential.chainPem), verify)
      : grpc.credentials.createSsl(root, null, null, verify);
  // An IP literal is no TLS server name (RFC 6066 3): send a fixed one, as sidecars do ('meshpilot');
  // what is checked is the SPIFFE ID above, not this name.
  const host = ca.address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const serverName = ca.serverName ?? (isIP(host) ? 'meshpilot' : undefined);
  const options: grpc.ClientOptions = serverName
    ? { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName }
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
