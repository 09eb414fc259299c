// The secrets manager: issues SVIDs for the workloads whose proxies are connected, ahead
// of any push, renews them before they expire and replaces them after a revocation or a
// root rotation, then says which workloads' certificates changed. Generators only read
// what is current (SPIRE's SDS handler likewise only reads what its manager issued), so
// building a snapshot never signs anything, and what is read is never expired.
import { generateKeyPair as generateKeyPairAsync, type KeyObject } from 'node:crypto';
import { encodeP256KeyPair, type CertificateAuthority, type IssuedSvid } from '../ca/index.js';
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

/** A fresh key pair, as the signer and the SDS secret need it. */
export interface FreshKey {
  readonly publicKey: KeyObject;
  /** SubjectPublicKeyInfo, DER: what the CA signs over, without exporting the key again. */
  readonly spkiDer: Buffer;
  /** PKCS#8, PEM: what the proxy receives. */
  readonly privateKeyPem: string;
}

/** Makes a P-256 key on libuv's thread pool (the other core), then encodes it cheaply on the event loop. */
export function generateFreshKey(): Promise<FreshKey> {
  return new Promise((resolve, reject) =>
    generateKeyPairAsync('ec', { namedCurve: 'P-256' }, (e, publicKey, privateKey) => {
      if (e) return reject(e);
      try {
        const { spkiDer, pkcs8Pem } = encodeP256KeyPair(privateKey);
        resolve({ publicKey, spkiDer, privateKeyPem: pkcs8Pem });
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    }),
  );
}

/** Keeps one fresh SVID per workload whose proxies are connected. */
export interface SvidStore {
  /** The workload's current certificate; undefined while none is issued, or once it has expired. Never signs. */
  current(workloadKey: string): WorkloadCertificate | undefined;
  /** A proxy of the workload connected: keep a certificate for it (issued now, in the background, if it has no usable one). */
  want(workloadKey: string, spiffeId: SpiffeId): void;
  /** A proxy of the workload went away; when none is left, its certificate and key are dropped. */
  release(workloadKey: string): void;
  /** Replaces the certificates of every workload running as `spiffeId` (after a revocation). */
  reissue(spiffeId: SpiffeId): readonly string[];
  /** Replaces the certificate with this serial, if a workload holds it (after it was revoked); returns the workload key. */
  reissueSerial(serialHex: string): string | undefined;
  /** Replaces every certificate (after a root rotation step changed the signing CA). */
  reissueAll(): readonly string[];
  /** The workload holding the certificate with this serial, if any. */
  holderOf(serialHex: string): string | undefined;
  /** Drops a workload that left the mesh. */
  forget(workloadKey: string): void;
  /** Resolves when nothing is waiting to be issued (tests, benchmarks). */
  settled(): Promise<void>;
  /** Subscribes to every issuance, with its reason (first use, renewal, revoked, reissue). */
  onIssued(cb: (reason: string) => void): () => void;
  /** Subscribes to certificate changes: the callback gets the workload key whose certificate changed. */
  onChanged(cb: (workloadKey: string) => void): () => void;
  /** How many workloads hold a certificate (metrics, tests). */
  size(): number;
  /** Stops every renewal timer and drops every key. */
  close(): void;
}

interface Entry {
  spiffeId: SpiffeId;
  cert?: WorkloadCertificate;
  timer?: unknown;
  /** Connected proxies of this workload. */
  users: number;
  /** Bumped on every request to replace the certificate, so a late issuance for an old request is dropped. */
  wanted: number;
}

/** Issuances started per turn of the event loop: enough to keep the key pool busy, few enough to keep streams served. */
const BATCH = 32;

/** Creates the store over a CA. Keys are made here: sidecars take their key over SDS from the control plane. */
export function createSvidStore(deps: {
  ca: Pick<CertificateAuthority, 'signSvid'>;
  ttlMs: number;
  renewal: RenewalPolicy;
  clock: Clock;
  timers?: Timers;
  random?: () => number;
  log: Logger;
  /** Key source (tests inject one); the default makes P-256 keys off the event loop. */
  newKey?: () => Promise<FreshKey>;
}): SvidStore {
  const timers = deps.timers ?? realTimers;
  const random = deps.random ?? Math.random;
  const newKey = deps.newKey ?? generateFreshKey;
  const entries = new Map<string, Entry>();
  const changed = new Set<(key: string) => void>();
  const issuedListeners = new Set<(reason: string) => void>();
  const queue = new Map<string, { reason: string; attempt: number }>();
  let inFlight = 0;
  let draining = false;
  let idle: (() => void)[] = [];
  let closed = false;

  const usable = (c: WorkloadCertificate | undefined) => c !== undefined && c.notAfter > deps.clock.now();

  function request(workloadKey: string, reason: string, attempt = 0): void {
    const e = entries.get(workloadKey);
    if (!e || closed) return;
    e.wanted++;
    queue.set(workloadKey, { reason, attempt });
    if (!draining) {
      draining = true;
      setImmediate(drain);
    }
  }

  function drain(): void {
    draining = false;
    let started = 0;
    for (const [key, job] of queue) {
      if (started >= BATCH) break;
      queue.delete(key);
      started++;
      void issue(key, job.reason, job.attempt);
    }
    if (queue.size > 0) {
      draining = true;
      setImmediate(drain);
    } else maybeIdle();
  }

  function maybeIdle(): void {
    if (queue.size === 0 && inFlight === 0) for (const cb of idle.splice(0)) cb();
  }

  async function issue(workloadKey: string, reason: string, attempt: number): Promise<void> {
    const e = entries.get(workloadKey);
    if (!e) return;
    const ticket = e.wanted;
    const spiffeId = e.spiffeId;
    inFlight++;
    try {
      let key: FreshKey;
      try {
        key = await newKey();
      } catch (err) {
        deps.log.error('svid key not generated', { workload: workloadKey, cause: String(err) });
        return retry(workloadKey, reason, attempt);
      }
      // Released, replaced by a newer request, or the store closed while the key was made.
      if (closed || entries.get(workloadKey) !== e || e.wanted !== ticket) return;
      const signed = deps.ca.signSvid({ spiffeId, publicKey: key.publicKey, spkiDer: key.spkiDer, ttlMs: deps.ttlMs });
      if (!signed.ok) {
        deps.log.error('svid not issued', { workload: workloadKey, spiffeId, kind: signed.error.kind, cause: signed.error.message });
        return retry(workloadKey, reason, attempt);
      }
      install(workloadKey, e, toCertificate(signed.value, key.privateKeyPem), reason);
    } finally {
      inFlight--;
      maybeIdle();
    }
  }

  function retry(workloadKey: string, reason: string, attempt: number): void {
    // The CA refused (not ready, or its state directory is gone): keep serving the current
    // certificate while it is valid and try again, backing off from 1 s to 30 s.
    const e = entries.get(workloadKey);
    if (!e || closed) return;
    if (e.timer !== undefined) timers.clearTimeout(e.timer);
    e.timer = timers.setTimeout(() => request(workloadKey, reason, attempt + 1), Math.min(30_000, 1_000 * 2 ** attempt));
  }

  function install(workloadKey: string, e: Entry, cert: WorkloadCertificate, reason: string): void {
    if (e.timer !== undefined) timers.clearTimeout(e.timer);
    e.cert = cert;
    // Lifetime counts from issuance, not from the back-dated notBefore (which is there for clock skew only).
    const now = deps.clock.now();
    const at = renewalTime({ notBefore: Math.max(cert.notBefore, now), notAfter: cert.notAfter }, deps.renewal, random());
    e.timer = timers.setTimeout(() => request(workloadKey, 'renewal'), Math.max(0, at - now));
    for (const cb of issuedListeners) cb(reason);
    deps.log.info('svid issued', {
      workload: workloadKey,
      spiffeId: cert.spiffeId,
      serial: cert.serialHex,
      notAfter: new Date(cert.notAfter).toISOString(),
      reason,
    });
    for (const cb of changed) cb(workloadKey);
  }

  function drop(workloadKey: string): void {
    const e = entries.get(workloadKey);
    if (!e) return;
    if (e.timer !== undefined) timers.clearTimeout(e.timer);
    entries.delete(workloadKey);
    queue.delete(workloadKey);
  }

  function replace(keys: readonly string[], reason: string): void {
    for (const k of keys) {
      const e = entries.get(k)!;
      // Never serve the replaced certificate again, even while its successor is being made.
      e.cert = undefined;
      request(k, reason);
      for (const cb of changed) cb(k);
    }
  }

  const serialKey = (s: string) => s.toLowerCase().replace(/[:]/g, '').replace(/^0+/, '');
  function holderOf(serialHex: string): string | undefined {
    const want = serialKey(serialHex);
    for (const [k, e] of entries) if (e.cert !== undefined && serialKey(e.cert.serialHex) === want) return k;
    return undefined;
  }

  return {
    current(workloadKey) {
      const c = entries.get(workloadKey)?.cert;
      return usable(c) ? c : undefined;
    },
    want(workloadKey, spiffeId) {
      let e = entries.get(workloadKey);
      if (e && e.spiffeId !== spiffeId) {
        // The workload now runs as another identity: its old certificate must not be served.
        drop(workloadKey);
        e = undefined;
      }
      if (!e) entries.set(workloadKey, (e = { spiffeId, users: 0, wanted: 0 }));
      e.users++;
      if (!usable(e.cert) && !queue.has(workloadKey)) request(workloadKey, e.cert ? 'expired' : 'first use');
    },
    release(workloadKey) {
      const e = entries.get(workloadKey);
      if (e && --e.users <= 0) drop(workloadKey);
    },
    reissue(spiffeId) {
      const keys = [...entries].filter(([, e]) => e.spiffeId === spiffeId).map(([k]) => k);
      replace(keys, 'reissue');
      return keys;
    },
    reissueSerial(serialHex) {
      const holder = holderOf(serialHex);
      if (holder) replace([holder], 'revoked');
      return holder;
    },
    holderOf,
    reissueAll() {
      const keys = [...entries.keys()];
      replace(keys, 'reissue');
      return keys;
    },
    forget: drop,
    settled: () => (queue.size === 0 && inFlight === 0 ? Promise.resolve() : new Promise<void>((r) => idle.push(r))),
    onIssued(cb) {
      issuedListeners.add(cb);
      return () => issuedListeners.delete(cb);
    },
    onChanged(cb) {
      changed.add(cb);
      return () => changed.delete(cb);
    },
    size: () => entries.size,
    close() {
      closed = true;
      for (const e of entries.values()) if (e.timer !== undefined) timers.clearTimeout(e.timer);
      entries.clear();
      queue.clear();
      for (const cb of idle.splice(0)) cb();
      idle = [];
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
