import type { CertificateAuthority, IssuedSvid } from '../ca/index.js';
import { generateKeyPair } from '../ca/index.js';
import type { SpiffeId } from '../identity/index.js';
import type { Clock } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import { renewalTime, type RenewalPolicy } from './renewal.js';

/** A workload's current SVID with its private key. */
export interface WorkloadCertificate {
  readonly spiffeId: SpiffeId;
  readonly chainPem: string;
  readonly keyPem: string;
  readonly serialHex: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

/** Timers, injected so tests can step through rotations. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real timers; unref'd so a pending renewal never keeps the process alive. */
export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Keeps one fresh SVID per workload: issued on first use, renewed before it expires. */
export interface SvidStore {
  /** The workload's current certificate, issued now if it has none or it is no longer usable; undefined if the CA refused. */
  get(workloadKey: string, spiffeId: SpiffeId): WorkloadCertificate | undefined;
  /** Replaces the certificates of every workload running as `spiffeId` (after a revocation). */
  reissue(spiffeId: SpiffeId): readonly string[];
  /** Replaces the certificate with this serial, if a workload holds it (after it was revoked); returns the workload key. */
  reissueSerial(serialHex: string): string | undefined;
  /** Replaces every certificate (after a root rotation step changed the signing CA). */
  reissueAll(): readonly string[];
  /** Drops a workload that left the mesh. */
  forget(workloadKey: string): void;
  /** Subscribes to every issuance, with its reason (first use, renewal, revoked, reissue). */
  onIssued(cb: (reason: string) => void): () => void;
  /** Subscribes to renewals: the callback gets the workload key whose certificate changed. */
  onRenewed(cb: (workloadKey: string) => void): () => void;
  /** Stops every renewal timer. */
  close(): void;
}

/** Creates the store over a CA. Keys are made here: sidecars take their key over SDS from the control plane. */
export function createSvidStore(deps: {
  ca: Pick<CertificateAuthority, 'signSvid'>;
  ttlMs: number;
  renewal: RenewalPolicy;
  clock: Clock;
  timers?: Timers;
  random?: () => number;
  log: Logger;
}): SvidStore {
  const timers = deps.timers ?? realTimers;
  const random = deps.random ?? Math.random;
  const certs = new Map<string, { cert: WorkloadCertificate; timer: unknown }>();
  const listeners = new Set<(key: string) => void>();
  const issuedListeners = new Set<(reason: string) => void>();

  function issue(workloadKey: string, spiffeId: SpiffeId, reason: string): WorkloadCertificate | undefined {
    const keys = generateKeyPair('ec-p256');
    const signed = deps.ca.signSvid({ spiffeId, publicKey: keys.publicKey, ttlMs: deps.ttlMs });
    if (!signed.ok) {
      deps.log.error('svid not issued', { workload: workloadKey, spiffeId, kind: signed.error.kind, cause: signed.error.message });
      return undefined;
    }
    const cert = toCertificate(signed.value, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    const previous = certs.get(workloadKey);
    if (previous) timers.clearTimeout(previous.timer);
    // Lifetime counts from issuance, not from the back-dated notBefore (which is there for clock skew only).
    const at = renewalTime({ notBefore: Math.max(cert.notBefore, deps.clock.now()), notAfter: cert.notAfter }, deps.renewal, random());
    const timer = timers.setTimeout(() => renew(workloadKey, spiffeId), Math.max(0, at - deps.clock.now()));
    certs.set(workloadKey, { cert, timer });
    for (const cb of issuedListeners) cb(reason);
    deps.log.info('svid issued', {
      workload: workloadKey,
      spiffeId,
      serial: cert.serialHex,
      notAfter: new Date(cert.notAfter).toISOString(),
      reason,
    });
    return cert;
  }

  function renew(workloadKey: string, spiffeId: SpiffeId, attempt = 0): void {
    if (!certs.has(workloadKey)) return;
    if (issue(workloadKey, spiffeId, 'renewal')) for (const cb of listeners) cb(workloadKey);
    else {
      // The CA refused (not ready, or its state directory is gone): keep serving the current
      // certificate while it is valid and try again, backing off from 1 s to 30 s.
      const entry = certs.get(workloadKey)!;
      const delay = Math.min(30_000, 1_000 * 2 ** attempt);
      entry.timer = timers.setTimeout(() => renew(workloadKey, spiffeId, attempt + 1), delay);
    }
  }

  return {
    get(workloadKey, spiffeId) {
      const entry = certs.get(workloadKey);
      const usable = entry && entry.cert.spiffeId === spiffeId && entry.cert.notAfter > deps.clock.now();
      return usable ? entry.cert : issue(workloadKey, spiffeId, entry ? 'identity changed or expired' : 'first use');
    },
    reissue(spiffeId) {
      const keys = [...certs].filter(([, e]) => e.cert.spiffeId === spiffeId).map(([k]) => k);
      for (const k of keys) issue(k, spiffeId, 'reissue');
      for (const k of keys) for (const cb of listeners) cb(k);
      return keys;
    },
    reissueSerial(serialHex) {
      const want = serialHex.toLowerCase().replace(/^0+/, '');
      const hit = [...certs].find(([, e]) => e.cert.serialHex.toLowerCase().replace(/^0+/, '') === want);
      if (!hit) return undefined;
      const [key, entry] = hit;
      issue(key, entry.cert.spiffeId, 'revoked');
      for (const cb of listeners) cb(key);
      return key;
    },
    reissueAll() {
      const all = [...certs].map(([k, e]) => [k, e.cert.spiffeId] as const);
      for (const [k, id] of all) issue(k, id, 'reissue');
      for (const [k] of all) for (const cb of listeners) cb(k);
      return all.map(([k]) => k);
    },
    forget(workloadKey) {
      const entry = certs.get(workloadKey);
      if (entry) timers.clearTimeout(entry.timer);
      certs.delete(workloadKey);
    },
    onIssued(cb) {
      issuedListeners.add(cb);
      return () => issuedListeners.delete(cb);
    },
    onRenewed(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    close() {
      for (const e of certs.values()) timers.clearTimeout(e.timer);
      certs.clear();
    },
  };
}

function toCertificate(s: IssuedSvid, keyPem: string): WorkloadCertificate {
  return {
    spiffeId: s.spiffeId,
    chainPem: s.chainPem.join(''),
    keyPem,
    serialHex: s.serialHex,
    notBefore: s.notBefore,
    notAfter: s.notAfter,
  };
}
