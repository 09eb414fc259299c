// TLS server credentials that ask for a client certificate without requiring one, so that
// one port serves callers with a token (no client certificate) and callers with a mesh
// SVID. `grpc.ServerCredentials.createSsl(roots, pairs, false)` does not ask at all, so
// `getAuthContext()` never carries a peer certificate; with `true` a token-only caller
// fails the handshake. grpc-js's certificate-provider credentials set requestCert
// without rejectUnauthorized, and take updates (a renewed serving certificate, a new root).
import * as grpc from '@grpc/grpc-js';

/** The serving certificate chain (leaf first) and key, and the roots client certificates are checked against, PEM. */
export interface ServingMaterial {
  readonly certChainPem: string;
  readonly keyPem: string;
  readonly rootsPem: string;
}

/** Server credentials and a way to replace their material on a running server. */
export interface UpdatableServerCredentials {
  readonly credentials: grpc.ServerCredentials;
  /** New connections use the new material; open ones keep theirs. */
  update(material: ServingMaterial): void;
}

type CaListener = (u: { caCertificate: Buffer } | null) => void;
type IdentityListener = (u: { certificate: Buffer; privateKey: Buffer } | null) => void;

/** Creates TLS credentials that request (and verify against the roots) but do not require a client certificate. */
export function optionalClientCertCredentials(initial: ServingMaterial): UpdatableServerCredentials {
  let material = initial;
  const caListeners = new Set<CaListener>();
  const idListeners = new Set<IdentityListener>();
  const ca = () => ({ caCertificate: Buffer.from(material.rootsPem) });
  const id = () => ({ certificate: Buffer.from(material.certChainPem), privateKey: Buffer.from(material.keyPem) });
  // grpc-js reads the options before it registers its watcher and registers listeners
  // while doing so; a synchronous first update would reach nobody, so deliver it next turn.
  const provider = {
    addCaCertificateListener: (l: CaListener) => {
      caListeners.add(l);
      setImmediate(() => caListeners.has(l) && l(ca()));
    },
    removeCaCertificateListener: (l: CaListener) => void caListeners.delete(l),
    addIdentityCertificateListener: (l: IdentityListener) => {
      idListeners.add(l);
      setImmediate(() => idListeners.has(l) && l(id()));
    },
    removeIdentityCertificateListener: (l: IdentityListener) => void idListeners.delete(l),
  };
  // The first argument lands in the identity slot of grpc-js's constructor (its parameter
  // names disagree); one provider serves both updates, so the order does not matter.
  const credentials = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
  return {
    credentials,
    update(next) {
      material = next;
      for (const l of caListeners) l(ca());
      for (const l of idListeners) l(id());
    },
  };
}
