// The control plane's own TLS identity: an SVID for meshpilot itself (with DNS names,
// so clients that check names can), renewed like any other, and the trust bundle to
// check client certificates against. grpc-js takes both through a certificate provider
// and updates its TLS context on every change, so renewal needs no restart.
import * as grpc from '@grpc/grpc-js';
import type { CertificateAuthority } from '../ca/index.js';
import { generateKeyPair } from '../ca/index.js';
import type { SpiffeId } from '../identity/index.js';
import type { Clock } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import { renewalTime, type RenewalPolicy } from './renewal.js';
import type { Timers } from './svid-store.js';

type Provider = grpc.experimental.CertificateProvider;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdListener = grpc.experimental.IdentityCertificateUpdateListener;

/** TLS server credentials that follow the CA. */
export interface ServingCredentials {
  readonly credentials: grpc.ServerCredentials;
  /** The serial of the serving certificate now in use. */
  currentSerial(): string;
  /** The serving certificate chain and key now in use (PEM), for other TLS servers of the control plane (the bundle endpoint). */
  currentIdentity(): { readonly certificate: Buffer; readonly privateKey: Buffer } | undefined;
  /** Subscribes to serving certificate changes; returns the unsubscribe function. */
  onIdentity(cb: () => void): () => void;
  close(): void;
}

/** Issues meshpilot's serving certificate and keeps it and the client-certificate roots current. */
export function createServingCredentials(deps: {
  ca: Pick<CertificateAuthority, 'signSvid' | 'trustBundle' | 'onChange'>;
  id: SpiffeId;
  dnsNames: readonly string[];
  /** IP SANs: the addresses clients dial (the listener's), so that name-checking clients accept an address. */
  ipAddresses?: readonly string[];
  ttlMs: number;
  renewal: RenewalPolicy;
  clock: Clock;
  timers: Timers;
  log: Logger;
}): ServingCredentials {
  const caListeners = new Set<CaListener>();
  const idListeners = new Set<IdListener>();
  const identityWatchers = new Set<() => void>();
  let identity: grpc.experimental.IdentityCertificateUpdate | undefined;
  let serial = '';
  let timer: unknown;

  const caUpdate = () => ({ caCertificate: Buffer.from(deps.ca.trustBundle().pem) });

  function issue(): void {
    const keys = generateKeyPair('ec-p256');
    const r = deps.ca.signSvid({
      spiffeId: deps.id,
      publicKey: keys.publicKey,
      ttlMs: deps.ttlMs,
      dnsNames: deps.dnsNames,
      ipAddresses: deps.ipAddresses ?? [],
    });
    if (!r.ok) {
      // Keep serving the current certificate and try again shortly.
      deps.log.error('serving certificate not issued', { kind: r.error.kind, cause: r.error.message });
      timer = deps.timers.setTimeout(issue, 1_000);
      return;
    }
    identity = {
      certificate: Buffer.from(r.value.chainPem.join('')),
      privateKey: Buffer.from(keys.privateKey.export({ type: 'pkcs8', format: 'pem' })),
    };
    serial = r.value.serialHex;
    for (const l of idListeners) l(identity);
    for (const w of identityWatchers) w();
    const at = renewalTime(
      { notBefore: Math.max(r.value.notBefore, deps.clock.now()), notAfter: r.value.notAfter },
      deps.renewal,
      Math.random(),
    );
    timer = deps.timers.setTimeout(issue, Math.max(1_000, at - deps.clock.now()));
    deps.log.info('serving certificate issued', {
      id: deps.id,
      dnsNames: deps.dnsNames,
      ipAddresses: deps.ipAddresses,
      serial,
      notAfter: new Date(r.value.notAfter).toISOString(),
    });
  }

  const offCa = deps.ca.onChange((c) => {
    if (c.kind === 'trust-bundle') for (const l of caListeners) l(caUpdate());
    // A new signing CA: the serving certificate must chain to what clients trust next.
    if (c.kind === 'signing-ca') {
      deps.timers.clearTimeout(timer);
      issue();
    }
  });
  issue();

  // The first update is delivered on a microtask, not synchronously: grpc-js (1.14) adds
  // its server's watcher only after registering these listeners, so a synchronous first
  // update would be lost and every TLS connection dropped until the next renewal.
  const provider: Provider = {
    addCaCertificateListener(l) {
      caListeners.add(l);
      queueMicrotask(() => caListeners.has(l) && l(caUpdate()));
    },
    removeCaCertificateListener: (l) => caListeners.delete(l),
    addIdentityCertificateListener(l) {
      idListeners.add(l);
      queueMicrotask(() => idListeners.has(l) && identity && l(identity));
    },
    removeIdentityCertificateListener: (l) => idListeners.delete(l),
  };
  // Client certificates are requested but optional: a proxy may prove itself with a token instead.
  // The authenticator then checks whatever certificate was presented (chain, validity, revocation).
  const credentials = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
  return {
    credentials,
    currentSerial: () => serial,
    currentIdentity: () => identity && { certificate: identity.certificate, privateKey: identity.privateKey },
    onIdentity(cb) {
      identityWatchers.add(cb);
      return () => identityWatchers.delete(cb);
    },
    close() {
      deps.timers.clearTimeout(timer);
      offCa();
    },
  };
}
