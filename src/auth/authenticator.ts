// Who is calling: a proxy proves its identity with a token (gRPC metadata
// `authorization: Bearer …`) or with a valid, unrevoked mesh SVID as its TLS client
// certificate. Nothing the proxy says about itself (node id, metadata) counts.
import { X509Certificate } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { parseSpiffeId, trustDomainOf, type SpiffeId, type TrustDomain } from '../identity/index.js';
import { err, ok, type Clock, type Result } from '../lib/index.js';
import type { TokenVerifier } from './tokens.js';

/** A proven caller. */
export interface Principal {
  readonly identity: SpiffeId;
  readonly via: 'token' | 'certificate';
  /** When the credential stops being valid (token `exp` or certificate notAfter, ms): a stream it opened ends then. */
  readonly expiresAt?: number;
  /** The client certificate's serial (lowercase hex, no leading zeros), when the credential was one. */
  readonly serial?: string;
}

/** Why a caller was not authenticated: a closed set the RPC edge maps to UNAUTHENTICATED. */
export type AuthFailureKind = 'no-credential' | 'bad-token' | 'bad-certificate' | 'revoked';

/** A refused credential: the kind for the caller, the message for the log. */
export interface AuthFailure {
  readonly kind: AuthFailureKind;
  readonly message: string;
}

/** What an RPC offers to prove who is calling. */
export interface CallCredentials {
  readonly metadata: Metadata;
  readonly peerCertificate?: PeerCertificate;
}

/** Authenticates callers of the xDS, SDS and CSR services. */
export interface Authenticator {
  authenticate(call: CallCredentials): Promise<Result<Principal, AuthFailure>>;
}

/** The CA material a client certificate is checked against. */
export interface TrustSource {
  /** PEM certificates that may have issued a mesh SVID: signing CAs (current and past, during a rotation) and roots. */
  issuers(): readonly string[];
  /** Whether a serial (lowercase hex, no leading zeros) has been revoked. */
  isRevoked(serialHex: string): boolean;
}

/** Creates the authenticator over a token verifier and the mesh's trust material. */
export function createAuthenticator(deps: {
  tokens: TokenVerifier;
  trust: TrustSource;
  trustDomain: TrustDomain;
  clock: Clock;
}): Authenticator {
  let issuerCache: { pems: readonly string[]; certs: X509Certificate[] } = { pems: [], certs: [] };
  const issuers = () => {
    const pems = deps.trust.issuers();
    if (pems !== issuerCache.pems) issuerCache = { pems, certs: pems.map((p) => new X509Certificate(p)) };
    return issuerCache.certs;
  };

  function verifyCertificate(peer: PeerCertificate): Result<Principal, AuthFailure> {
    const bad = (message: string) => err<AuthFailure>({ kind: 'bad-certificate', message });
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(peer.raw);
    } catch (e) {
      return bad(`client certificate does not parse: ${(e as Error).message}`);
    }
    const now = deps.clock.now();
    if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) <= now)
      return bad(`client certificate is not valid now (${cert.validFrom} .. ${cert.validTo})`);
    if (cert.ca) return bad('client certificate is a CA certificate');
    if (!issuers().some((i) => cert.checkIssued(i) && cert.verify(i.publicKey)))
      return bad('client certificate was not issued by this mesh');
    const uris = (cert.subjectAltName ?? '')
      .split(', ')
      .filter((s) => s.startsWith('URI:'))
      .map((s) => s.slice(4));
    if (uris.length !== 1) return bad(`client certificate has ${uris.length} URI SANs; an SVID has exactly one`);
    const id = parseSpiffeId(uris[0]!);
    if (!id.ok) return bad(`client certificate URI SAN: ${id.error.message}`);
    if (trustDomainOf(id.value) !== deps.trustDomain) return bad(`client certificate is for trust domain ${trustDomainOf(id.value)}`);
    const serial = cert.serialNumber.toLowerCase().replace(/^0+/, '');
    if (deps.trust.isRevoked(serial)) return err({ kind: 'revoked', message: `client certificate ${serial} was revoked` });
    return ok({ identity: id.value, via: 'certificate', expiresAt: Date.parse(cert.validTo), serial });
  }

  return {
    async authenticate(call) {
      const auth = call.metadata.get('authorization')[0];
      if (auth !== undefined) {
        const m = /^Bearer\s+(\S+)$/i.exec(String(auth));
        if (!m) return err({ kind: 'bad-token', message: 'authorization metadata is not "Bearer <token>"' });
        const v = await deps.tokens.verifyWithExpiry(m[1]!);
        return v.ok
          ? ok({ identity: v.value.identity, via: 'token', expiresAt: v.value.expiresAt })
          : err({ kind: 'bad-token', message: `${v.error.kind}: ${v.error.message}` });
      }
      if (call.peerCertificate?.raw) return verifyCertificate(call.peerCertificate);
      // TLS shows only a verified certificate: one that is expired or from another CA arrives as none.
      return err({ kind: 'no-credential', message: 'no token and no valid client certificate' });
    },
  };
}
