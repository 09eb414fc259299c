// The CA core shared by every backend: validation of requests, issuance records,
// revocation, CRLs, root rotation and change notification. Backends differ only in where
// the issuing CAs come from and where state is kept (a CaStore).
import type { KeyObject } from 'node:crypto';
import { err, ok, shortHash } from '../lib/index.js';
import type { Clock, Result } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import type { SpiffeId, TrustDomain } from '../identity/index.js';
import { buildCrl } from './crl.js';
import { toPem } from './der.js';
import { ipAddressBytes } from './ip-address.js';
import { describeKey, isExternalKey, KeyUnavailableError, spkiOf } from './keys.js';
import type { KeyDescription } from './keys.js';
import type { ParsedCertificate, SigningCa } from './material.js';
import { createSvidSigner } from './svid-signer.js';
import type { SignedLeaf, SvidSigner } from './svid-signer.js';
import type { CaStore, IssuanceRecord, PersistedState, RevokedRecord } from './state-store.js';
import { caError } from './types.js';
import type {
  CaChange,
  CaError,
  CaStatus,
  CertificateAuthority,
  CertificateSummary,
  IssuedCrl,
  IssuedSvid,
  RevokedCertificate,
  RotationPhase,
  SignSvidRequest,
  TrustBundle,
} from './types.js';

/** An issuing CA as the core sees it: the signing material, what lies between it and its roots, and the roots. */
export interface Issuer {
  readonly id: string;
  readonly ca: SigningCa;
  /** Certificates between the issuing CA and the root, excluding both. */
  readonly intermediates: readonly ParsedCertificate[];
  /** The roots this CA chains to (itself when it is a root). */
  readonly roots: readonly ParsedCertificate[];
}

/** Limits and timings of issuance. */
export interface IssuancePolicy {
  readonly defaultTtlMs: number;
  readonly maxTtlMs: number;
  readonly backdateMs: number;
  readonly crlValidityMs: number;
}

/** Everything the core needs, loaded and verified by a backend. */
export interface AuthorityDeps {
  readonly trustDomain: TrustDomain;
  readonly mode: CaStatus['mode'];
  readonly clock: Clock;
  readonly log: Logger;
  readonly store: CaStore;
  /** The constant part of ca.json; undefined when nothing is persisted. */
  readonly persisted?: Pick<PersistedState, 'mode' | 'pluginDir'>;
  readonly issuers: readonly Issuer[];
  readonly signing: string;
  readonly issued: readonly IssuanceRecord[];
  readonly revoked: readonly RevokedRecord[];
  readonly crlNumber: number;
  readonly policy: IssuancePolicy;
  /** Makes (and persists the material of) a new root for a rotation; absent when roots come from outside (plug-in). */
  readonly newRoot?: (id: string) => Result<Issuer, CaError>;
}

interface LiveIssuer extends Issuer {
  readonly signer: SvidSigner;
  /** The issuing CA and intermediates, excluding roots: what follows the leaf in an SVID chain. */
  readonly chain: readonly ParsedCertificate[];
  readonly chainPem: readonly string[];
  readonly notBefore: number;
  readonly notAfter: number;
}

const DNS_NAME = /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

/** Normalizes a serial as users type it (any case, colons, leading zeros) to our lowercase hex form. */
export function normalizeSerial(s: string): string | undefined {
  const hex = s.trim().replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(hex)) return undefined;
  return hex.replace(/^0+(?=.)/, '');
}

function live(i: Issuer): LiveIssuer {
  const chain = [i.ca, ...i.intermediates].filter((c) => !i.roots.some((r) => r.der.equals(c.der)));
  const all = [i.ca, ...i.intermediates, ...i.roots];
  return {
    ...i,
    signer: createSvidSigner({ key: i.ca.key, alg: i.ca.alg, subjectDer: i.ca.info.subject, keyId: i.ca.keyId }),
    chain,
    chainPem: chain.map((c) => c.pem),
    // An SVID must not outlive, or predate, any certificate of its chain.
    notBefore: Math.max(...all.map((c) => c.info.notBefore)),
    notAfter: Math.min(...all.map((c) => c.info.notAfter)),
  };
}

/** Creates the CA core over loaded, verified issuers. */
export function createAuthority(deps: AuthorityDeps): CertificateAuthority {
  const { clock, log, store, policy, trustDomain } = deps;
  let issuers: LiveIssuer[] = deps.issuers.map(live);
  let signing = issuers.find((i) => i.id === deps.signing)!;
  if (!signing) throw new Error(`signing issuer ${deps.signing} not among issuers`);
  const issued = new Map<string, IssuanceRecord>();
  const revoked = new Map<string, RevokedRecord>();
  let crlNumber = deps.crlNumber;
  let crls: IssuedCrl[] = [];
  let crlSignedAt = 0;
  let bundle: TrustBundle | undefined;
  const listeners = new Set<(c: CaChange) => void>();
  // A valid SPIFFE ID is in our trust domain, with a path, exactly when it starts with this prefix.
  const tdId = `spiffe://${trustDomain}`;
  const tdPrefix = `${tdId}/`;

  for (const r of deps.revoked) revoked.set(r.serial, r);
  const now0 = clock.now();
  let pruned = 0;
  for (const r of deps.issued) {
    if (r.notAfter <= now0 || !issuers.some((i) => i.id === r.issuer)) pruned++;
    else if (!revoked.has(r.serial)) issued.set(r.serial, r);
  }
  if (pruned > 0) {
    const w = store.rewriteIssued([...issued.values()]);
    if (!w.ok) log.warn('issuance journal compaction failed', { cause: w.error.message });
  }

  const emit = (kind: CaChange['kind']) => {
    for (const cb of listeners) {
      try {
        cb({ kind });
      } catch (e) {
        log.error('ca change listener failed', { kind, cause: (e as Error).message });
      }
    }
  };

  const rotation = (): RotationPhase => (issuers.length === 1 ? 'none' : signing === issuers[0] ? 'prepared' : 'activated');

  const persistedState = (over: {
    issuers?: readonly LiveIssuer[];
    signing?: LiveIssuer;
    revoked?: readonly RevokedRecord[];
  }): PersistedState | undefined =>
    deps.persisted && {
      format: 1,
      trustDomain,
      ...deps.persisted,
      issuers: (over.issuers ?? issuers).map((i) => i.id),
      signing: (over.signing ?? signing).id,
      crlNumber,
      revoked: over.revoked ?? [...revoked.values()],
    };

  const commit = (over: Parameters<typeof persistedState>[0]): Result<void, CaError> => {
    const s = persistedState(over);
    return s ? store.writeState(s) : ok(undefined);
  };

  // Signs the CRL of every issuer that may sign one, for the given revocations. Throws
  // KeyUnavailableError when the CA key is in a token that cannot sign right now.
  const buildCrls = (revokedNow: readonly RevokedRecord[], number: number, now: number): IssuedCrl[] =>
    issuers
      .filter((i) => i.ca.canSignCrl)
      .map((i) => {
        const entries = revokedNow
          .filter((r) => r.issuer === i.id && r.notAfter > now)
          .sort((a, b) => a.serial.localeCompare(b.serial))
          .map((r) => ({ serialHex: r.serial, revokedAt: Math.min(r.revokedAt, now) }));
        // thisUpdate is back-dated like certificates: a peer whose clock is a little behind must not see a CRL from the future.
        const thisUpdate = Math.floor((now - policy.backdateMs) / 1000) * 1000;
        const nextUpdate = Math.floor((now + policy.crlValidityMs) / 1000) * 1000;
        const der = buildCrl({ issuer: i.ca, thisUpdate, nextUpdate, crlNumber: number, entries });
        return {
          issuer: i.ca.summary.subject,
          der,
          pem: toPem('X509 CRL', der),
          thisUpdate,
          nextUpdate,
          crlNumber: number,
          revokedSerials: entries.map((e) => e.serialHex),
        };
      });

  const nextCrlNumber = (now: number) => Math.max(crlNumber + 1, Math.floor(now / 1000));

  // Re-signs the CRLs for the current revocations. With the key unavailable the last CRLs keep
  // serving (they stay valid until nextUpdate) and maintain() tries again; returns whether it signed.
  const signCrls = (): boolean => {
    const now = clock.now();
    const number = nextCrlNumber(now);
    try {
      crls = buildCrls([...revoked.values()], number, now);
    } catch (e) {
      if (!(e instanceof KeyUnavailableError)) throw e;
      log.warn('crl not signed: ca key unavailable; the last crl keeps serving', { cause: e.message });
      return false;
    }
    crlNumber = number;
    crlSignedAt = now;
    return true;
  };
  signCrls();

  const crlStale = () => clock.now() >= crlSignedAt + policy.crlValidityMs / 2;

  const summary = (c: ParsedCertificate): CertificateSummary => c.summary;

  const toRevoked = (r: RevokedRecord): RevokedCertificate => ({
    serialHex: r.serial,
    spiffeId: r.spiffeId,
    revokedAt: r.revokedAt,
    notAfter: r.notAfter,
  });

  const status = (): CaStatus => {
    const now = clock.now();
    const outstanding: Record<string, number> = {};
    for (const i of issuers) outstanding[i.ca.summary.subject] = 0;
    for (const r of issued.values()) {
      const i = issuers.find((x) => x.id === r.issuer);
      if (i && r.notAfter > now) outstanding[i.ca.summary.subject] = (outstanding[i.ca.summary.subject] ?? 0) + 1;
    }
    const roots = new Map<string, CertificateSummary>();
    for (const i of issuers) for (const r of i.roots) roots.set(r.summary.fingerprint256, summary(r));
    return {
      trustDomain,
      mode: deps.mode,
      rotation: rotation(),
      roots: [...roots.values()],
      signingCa: summary(signing.ca),
      signingKey: isExternalKey(signing.ca.key) ? `PKCS#11 key ${signing.ca.key.description}` : 'in process',
      intermediates: signing.chain.map(summary),
      revoked: [...revoked.values()].map(toRevoked),
      outstanding,
    };
  };

  const fail = (kind: CaError['kind'], message: string): Result<never, CaError> => err(caError(kind, message));

  const checkPublicKey = (key: KeyObject): Result<KeyDescription, CaError> => {
    if (key?.type !== 'public') return fail('bad-request', 'publicKey must be a public KeyObject');
    const d = describeKey(key);
    return d.ok ? d : fail('bad-request', d.error);
  };

  const revokeRecords = (records: readonly IssuanceRecord[]): Result<RevokedCertificate[], CaError> => {
    if (records.length === 0) return ok([]);
    const now = clock.now();
    for (const r of records) {
      const i = issuers.find((x) => x.id === r.issuer);
      if (i && !i.ca.canSignCrl) {
        return fail(
          'bad-state',
          `cannot revoke ${r.serial}: issuing CA '${i.ca.summary.subject}' lacks the cRLSign key usage, so it cannot sign a CRL`,
        );
      }
    }
    const added = records.map((r) => ({ ...r, revokedAt: now }));
    const all = [...revoked.values(), ...added];
    // The CRL is signed before the revocation is recorded: a revocation that no CRL carries would protect nobody.
    const number = nextCrlNumber(now);
    let next: IssuedCrl[];
    try {
      next = buildCrls(all, number, now);
    } catch (e) {
      if (!(e instanceof KeyUnavailableError)) throw e;
      return fail('not-ready', `cannot revoke now: the CA key is unavailable to sign the CRL (${e.message})`);
    }
    crlNumber = number;
    const c = commit({ revoked: all });
    if (!c.ok) return c;
    for (const r of added) {
      revoked.set(r.serial, r);
      issued.delete(r.serial);
      log.info('certificate revoked', { serial: r.serial, spiffeId: r.spiffeId, issuer: r.issuer });
    }
    crls = next;
    crlSignedAt = now;
    emit('crl');
    return ok(added.map(toRevoked));
  };

  const ca: CertificateAuthority = {
    trustDomain,

    signSvid(req: SignSvidRequest): Result<IssuedSvid, CaError> {
      if (!req.spiffeId.startsWith(tdPrefix)) {
        // SPIFFE ID spec 2.2: an ID without a path names the trust domain itself, not a workload.
        if (req.spiffeId === tdId) return fail('bad-request', `identity ${req.spiffeId} has no path: an SVID names a workload`);
        return fail('wrong-trust-domain', `identity ${req.spiffeId} is not in trust domain ${trustDomain}`);
      }
      const desc = checkPublicKey(req.publicKey);
      if (!desc.ok) return desc;
      const ttl = req.ttlMs ?? policy.defaultTtlMs;
      if (!Number.isFinite(ttl) || ttl < 1000) return fail('bad-request', `ttl must be at least 1s (got ${ttl}ms)`);
      if (ttl > policy.maxTtlMs) return fail('ttl-too-long', `ttl ${ttl}ms exceeds the maximum of ${policy.maxTtlMs}ms`);
      const dnsNames = req.dnsNames ?? [];
      for (const d of dnsNames) if (!DNS_NAME.test(d)) return fail('bad-request', `'${d}' is not a valid DNS name`);
      const ipAddresses: Buffer[] = [];
      for (const a of req.ipAddresses ?? []) {
        const bytes = ipAddressBytes(a);
        if (!bytes) return fail('bad-request', `'${a}' is not a valid IP address`);
        ipAddresses.push(bytes);
      }
      const now = clock.now();
      const s = signing;
      if (now >= s.notAfter) return fail('not-ready', `the signing CA chain expired at ${new Date(s.notAfter).toISOString()}`);
      const notBefore = Math.ceil(Math.max(now - policy.backdateMs, s.notBefore) / 1000) * 1000;
      const notAfter = Math.floor(Math.min(now + ttl, s.notAfter) / 1000) * 1000;
      const spki = req.spkiDer
        ? Buffer.from(req.spkiDer.buffer, req.spkiDer.byteOffset, req.spkiDer.byteLength)
        : spkiOf(req.publicKey, desc.value);
      let leaf: SignedLeaf;
      try {
        leaf = s.signer.sign({
          spiffeId: req.spiffeId,
          spki,
          rsa: desc.value.startsWith('rsa'),
          dnsNames,
          ipAddresses,
          notBefore,
          notAfter,
        });
      } catch (e) {
        // A key in a token that went away: refuse (UNAVAILABLE at the edges); certificates already out keep working.
        if (!(e instanceof KeyUnavailableError)) throw e;
        return fail('not-ready', `the CA key is unavailable: ${e.message}`);
      }
      const rec: IssuanceRecord = { serial: leaf.serialHex, issuer: s.id, spiffeId: req.spiffeId, notAfter };
      // Not recorded, not handed out: revocation and root retirement rely on the record.
      const a = store.appendIssued(rec);
      if (!a.ok) return err(caError('not-ready', `cannot record issuance: ${a.error.message}`, a.error.file));
      issued.set(rec.serial, rec);
      const pem = toPem('CERTIFICATE', leaf.der);
      const svid: IssuedSvid = {
        spiffeId: req.spiffeId,
        certificateDer: leaf.der,
        certificatePem: pem,
        chainPem: s.chainPem.length === 0 ? [pem] : [pem, ...s.chainPem],
        serialHex: leaf.serialHex,
        notBefore,
        notAfter,
      };
      return ok(svid);
    },

    trustBundle() {
      if (!bundle) {
        const seen = new Set<string>();
        const rootsPem: string[] = [];
        for (const i of issuers) {
          for (const r of i.roots) {
            if (seen.has(r.summary.fingerprint256)) continue;
            seen.add(r.summary.fingerprint256);
            rootsPem.push(r.pem);
          }
        }
        const pem = rootsPem.join('');
        bundle = { rootsPem, pem, version: shortHash(pem) };
      }
      return bundle;
    },

    // Reading never signs nor emits a change: maintain() re-signs CRLs past half their validity.
    crl() {
      return crls;
    },

    revoke(serialHex) {
      const serial = normalizeSerial(serialHex);
      if (serial === undefined) return fail('bad-request', `'${serialHex}' is not a hexadecimal serial number`);
      const prior = revoked.get(serial);
      if (prior) return ok(toRevoked(prior));
      const rec = issued.get(serial);
      if (!rec || rec.notAfter <= clock.now()) {
        return fail('unknown-serial', `no unexpired certificate with serial ${serial} was issued by this CA`);
      }
      const r = revokeRecords([rec]);
      return r.ok ? ok(r.value[0]!) : r;
    },

    revokeIdentity(id: SpiffeId) {
      const now = clock.now();
      return revokeRecords([...issued.values()].filter((r) => r.spiffeId === id && r.notAfter > now));
    },

    rotateRoot(phase, opts = {}) {
      if (!deps.newRoot) {
        return fail('bad-state', `a ${deps.mode} CA's root is rotated by replacing its plug-in files, not by rotate-root`);
      }
      const current = rotation();
      if (phase === 'prepare') {
        if (current !== 'none') {
          return fail(
            'bad-state',
            `a root rotation is already in progress (phase ${current}): activate and retire it before preparing another`,
          );
        }
        const n = Math.max(...issuers.map((i) => Number(i.id.replace(/^root-/, '')) || 0)) + 1;
        const made = deps.newRoot(`root-${n}`);
        if (!made.ok) return made;
        const next = live(made.value);
        const c = commit({ issuers: [...issuers, next] });
        if (!c.ok) {
          store.removeRootMaterial(next.id);
          return c;
        }
        issuers = [...issuers, next];
        bundle = undefined;
        signCrls();
        log.info('root rotation prepared', { newRoot: next.ca.summary.subject, fingerprint: next.ca.summary.fingerprint256 });
        emit('trust-bundle');
        emit('crl');
        return ok(status());
      }
      if (phase === 'activate') {
        if (current !== 'prepared') {
          return fail(
            'bad-state',
            current === 'none'
              ? 'no root rotation is prepared: run prepare first'
              : 'the new root is already active: retire the old root next',
          );
        }
        const next = issuers[1]!;
        const c = commit({ signing: next });
        if (!c.ok) return c;
        signing = next;
        log.info('root rotation activated', { signingRoot: next.ca.summary.subject });
        emit('signing-ca');
        return ok(status());
      }
      if (current !== 'activated') {
        return fail(
          'bad-state',
          current === 'none'
            ? 'no root rotation is in progress: nothing to retire'
            : 'the new root is not active yet: run activate before retire',
        );
      }
      const old = issuers[0]!;
      const now = clock.now();
      const outstanding = [...issued.values()].filter((r) => r.issuer === old.id && r.notAfter > now);
      if (outstanding.length > 0 && !opts.force) {
        const last = Math.max(...outstanding.map((r) => r.notAfter));
        return fail(
          'bad-state',
          `${outstanding.length} unexpired, unrevoked SVID(s) signed by the old root '${old.ca.summary.subject}' are still outstanding (the last expires at ${new Date(last).toISOString()}): wait, revoke them, or force`,
        );
      }
      const keep = [...revoked.values()].filter((r) => r.issuer !== old.id);
      const c = commit({ issuers: [signing], revoked: keep });
      if (!c.ok) return c;
      issuers = [signing];
      for (const r of [...issued.values()]) if (r.issuer === old.id) issued.delete(r.serial);
      revoked.clear();
      for (const r of keep) revoked.set(r.serial, r);
      store.removeRootMaterial(old.id);
      const w = store.rewriteIssued([...issued.values()]);
      if (!w.ok) log.warn('issuance journal compaction failed', { cause: w.error.message });
      bundle = undefined;
      signCrls();
      log.warn('old root retired', { oldRoot: old.ca.summary.subject, forced: opts.force === true, outstanding: outstanding.length });
      emit('trust-bundle');
      emit('crl');
      return ok(status());
    },

    status,

    maintain() {
      const now = clock.now();
      let expired = 0;
      for (const r of [...issued.values()]) {
        if (r.notAfter <= now) {
          issued.delete(r.serial);
          expired++;
        }
      }
      const stillRevoked = [...revoked.values()].filter((r) => r.notAfter > now);
      if (stillRevoked.length !== revoked.size) {
        const c = commit({ revoked: stillRevoked });
        if (c.ok) {
          revoked.clear();
          for (const r of stillRevoked) revoked.set(r.serial, r);
          if (signCrls()) emit('crl');
        } else log.warn('state write failed', { cause: c.error.message });
      }
      if (expired > 0) {
        const w = store.rewriteIssued([...issued.values()]);
        if (!w.ok) log.warn('issuance journal compaction failed', { cause: w.error.message });
      }
      if (crlStale() && signCrls()) emit('crl');
    },

    onChange(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },

    close() {
      store.close();
    },
  };
  return ca;
}
