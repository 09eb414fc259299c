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
import { caKeyPem, describeKey, isExternalKey, KeyUnavailableError, spkiOf } from './keys.js';
import type { KeyDescription } from './keys.js';
import type { ParsedCertificate, SigningCa } from './material.js';
import { createSvidSigner } from './svid-signer.js';
import type { SignedLeaf, SvidSigner } from './svid-signer.js';
import type { CaStore, IssuanceRecord, PersistedState, RevokedRecord } from './state-store.js';
import type { CaRecord, CaStateStore, Versioned } from './shared-store.js';
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
  /** Set when the state lives in a shared store: changes go through compare-and-swap and other writers' changes are applied. */
  readonly shared?: SharedState;
}

/** A CA whose state is shared with other processes through a CaStateStore. */
export interface SharedState {
  readonly store: CaStateStore;
  readonly loaded: Versioned<CaRecord>;
  /** Builds an issuer from root material another writer stored (a rotation made elsewhere). */
  readonly issuerOf: (id: string, record: CaRecord) => Result<Issuer, CaError>;
  /** Makes a new root for a rotation; its material goes into the record, not to a file. */
  readonly makeRoot?: (id: string) => Issuer;
  /** True on the replica that runs the singletons (CRL re-signing, pruning): the lease holder. */
  readonly isLeader: () => boolean;
  /** Most compare-and-swap attempts per change before giving up (default 50). */
  readonly maxAttempts?: number;
}

/** The parts of the state a change replaces. */
interface StateView {
  readonly issuers: readonly string[];
  readonly signing: string;
  readonly revoked: readonly RevokedRecord[];
  readonly crlNumber: number;
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
  const { clock, log, store, policy, trustDomain, shared } = deps;
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
  // Shared mode: the record as last seen in the store, and its revision (the CAS expectation).
  let record: CaRecord | undefined = shared?.loaded.value;
  let revision: string | undefined = shared?.loaded.revision;

  for (const r of deps.revoked) revoked.set(r.serial, r);
  const now0 = clock.now();
  const prunable: string[] = [];
  for (const r of deps.issued) {
    if (r.notAfter <= now0 || !issuers.some((i) => i.id === r.issuer)) prunable.push(r.serial);
    else if (!revoked.has(r.serial)) issued.set(r.serial, r);
  }
  if (prunable.length > 0 && !shared) {
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

  const view = (): StateView => ({ issuers: issuers.map((i) => i.id), signing: signing.id, revoked: [...revoked.values()], crlNumber });

  // Signs the CRL of every issuer that may sign one, for the given revocations and CRL number. Throws
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

  // Re-signs the CRLs for the current revocations. Shared: every replica signs the record's CRL
  // number, so a peer never sees it go back. With the key unavailable (a token gone) the last CRLs
  // keep serving (they stay valid until nextUpdate) and maintain() tries again; returns whether it signed.
  const signCrls = (): boolean => {
    const now = clock.now();
    const number = shared ? crlNumber : Math.max(crlNumber + 1, Math.floor(now / 1000));
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

  const crlStale = (fraction = 0.5) => clock.now() >= crlSignedAt + policy.crlValidityMs * fraction;

  /**
   * Makes a state (ours after a change, or another writer's) the live one, and tells listeners
   * what changed: the trust bundle (roots added or retired), the signing CA, the CRL.
   */
  const apply = (next: StateView, made: readonly Issuer[] = []): Result<void, CaError> => {
    const byId = new Map(issuers.map((i) => [i.id, i] as const));
    for (const m of made) byId.set(m.id, live(m));
    const nextIssuers: LiveIssuer[] = [];
    for (const id of next.issuers) {
      let i = byId.get(id);
      if (!i && shared && record) {
        const built = shared.issuerOf(id, record);
        if (!built.ok) return built;
        i = live(built.value);
      }
      if (!i) return err(caError('bad-state', `issuer ${id} has no material`));
      nextIssuers.push(i);
    }
    const nextSigning = nextIssuers.find((i) => i.id === next.signing);
    if (!nextSigning) return err(caError('bad-state', `signing issuer ${next.signing} is not among the issuers`));
    const bundleChanged = nextIssuers.map((i) => i.id).join() !== issuers.map((i) => i.id).join();
    const signingChanged = nextSigning.id !== signing.id;
    const revokedKey = (rs: Iterable<RevokedRecord>) =>
      [...rs]
        .map((r) => r.serial)
        .sort()
        .join();
    const revokedChanged = revokedKey(next.revoked) !== revokedKey(revoked.values());
    const numberChanged = next.crlNumber !== crlNumber;
    issuers = nextIssuers;
    signing = nextSigning;
    revoked.clear();
    for (const r of next.revoked) {
      revoked.set(r.serial, r);
      issued.delete(r.serial);
    }
    for (const [serial, r] of [...issued]) if (!issuers.some((i) => i.id === r.issuer)) issued.delete(serial);
    crlNumber = next.crlNumber;
    if (bundleChanged) bundle = undefined;
    if (bundleChanged || revokedChanged || numberChanged || !shared) signCrls();
    if (bundleChanged) emit('trust-bundle');
    if (signingChanged) emit('signing-ca');
    if (bundleChanged || revokedChanged || numberChanged) emit('crl');
    return ok(undefined);
  };

  const toRecord = (base: CaRecord, next: StateView, made: readonly Issuer[]): CaRecord => {
    const roots: Record<string, { certPem: string; keyPem: string }> = {};
    if (base.mode === 'self-signed') {
      for (const id of next.issuers) {
        const m = made.find((x) => x.id === id);
        roots[id] = m ? { certPem: m.ca.pem, keyPem: caKeyPem(m.ca.key) } : base.roots[id]!;
      }
    }
    return { ...base, issuers: next.issuers, signing: next.signing, revoked: next.revoked, crlNumber: next.crlNumber, roots };
  };

  // etcd and memory revisions are increasing integers; a directory's are content hashes (one writer).
  const notNewer = (r: string): boolean =>
    r === revision || (revision !== undefined && /^\d+$/.test(r) && /^\d+$/.test(revision) && BigInt(r) <= BigInt(revision));

  /** Adopts another writer's record (from the watch or a lost compare-and-swap), newest only. */
  const adopt = (v: Versioned<CaRecord>): void => {
    if (notNewer(v.revision)) return;
    const before = record;
    record = v.value;
    const a = apply({ issuers: v.value.issuers, signing: v.value.signing, revoked: v.value.revoked, crlNumber: v.value.crlNumber });
    if (!a.ok) {
      // Keep serving the last good state; a later revision may repair it.
      record = before;
      log.error('ca state from store not applied', { where: shared?.store.where, revision: v.revision, cause: a.error.message });
      return;
    }
    revision = v.revision;
    log.debug('ca state adopted', { revision: v.revision });
  };

  /**
   * Persists a change and makes it live. Alone (state directory or memory), the change is written
   * and applied. Shared, it is computed from the store's current record and compare-and-swapped;
   * when another writer got there first, its record is adopted and the change computed again, so
   * concurrent changes through several replicas never lose one another.
   */
  const change = async (
    compute: (cur: StateView) => Result<{ next: StateView; made?: readonly Issuer[] } | undefined, CaError>,
  ): Promise<Result<void, CaError>> => {
    if (!shared) {
      const c = compute(view());
      if (!c.ok) return c;
      if (!c.value) return ok(undefined);
      const s: PersistedState | undefined = deps.persisted && {
        format: 1,
        trustDomain,
        ...deps.persisted,
        issuers: c.value.next.issuers,
        signing: c.value.next.signing,
        crlNumber: c.value.next.crlNumber,
        revoked: c.value.next.revoked,
      };
      if (s) {
        const w = store.writeState(s);
        if (!w.ok) return w;
      }
      return apply(c.value.next, c.value.made);
    }
    const maxAttempts = shared.maxAttempts ?? 50;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const c = compute(view());
      if (!c.ok) return c;
      if (!c.value) return ok(undefined);
      const made = c.value.made ?? [];
      const next = toRecord(record!, c.value.next, made);
      const out = await shared.store.compareAndSwap(revision, next);
      if (!out.ok) return out;
      if (out.value.applied) {
        // The watch may already have brought a later revision (built on ours): keep that one.
        if (notNewer(out.value.revision)) return ok(undefined);
        record = next;
        revision = out.value.revision;
        return apply(c.value.next, made);
      }
      if (!out.value.current) return err(caError('bad-state', `${shared.store.where}: the CA state was deleted from the store`));
      log.debug('ca state changed by another replica; retrying', { attempt });
      adopt(out.value.current);
      // Spread retries so that two replicas in a storm do not collide in lock step.
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * Math.min(5 * attempt, 50))));
    }
    return err(caError('not-ready', `${shared.store.where}: the CA state kept changing under us (${maxAttempts} attempts); try again`));
  };

  /** Shared: reads issuance records other replicas wrote, so a serial issued elsewhere can be revoked here. */
  const refreshIssued = async (): Promise<Result<void, CaError>> => {
    if (!shared) return ok(undefined);
    const j = await shared.store.loadIssued();
    if (!j.ok) return j;
    for (const p of j.value.skipped) log.warn('issuance record skipped', { key: p.key, cause: p.message });
    for (const r of j.value.records)
      if (!revoked.has(r.serial) && issuers.some((i) => i.id === r.issuer) && !issued.has(r.serial)) issued.set(r.serial, r);
    return ok(undefined);
  };

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

  const nextCrlNumber = (cur: number) => Math.max(cur + 1, Math.floor(clock.now() / 1000));

  const revokeRecords = async (records: readonly IssuanceRecord[]): Promise<Result<RevokedCertificate[], CaError>> => {
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
    // A revocation is recorded only if its CRL can be signed: one that no CRL carries would protect nobody.
    if (isExternalKey(signing.ca.key)) {
      try {
        buildCrls([...revoked.values()], crlNumber, now);
      } catch (e) {
        if (!(e instanceof KeyUnavailableError)) throw e;
        return fail('not-ready', `cannot revoke now: the CA key is unavailable to sign the CRL (${e.message})`);
      }
    }
    let added: RevokedRecord[] = [];
    const c = await change((cur) => {
      // Computed again on every attempt: another replica may have revoked some of these meanwhile.
      const already = new Set(cur.revoked.map((r) => r.serial));
      added = records.filter((r) => !already.has(r.serial)).map((r) => ({ ...r, revokedAt: now }));
      if (added.length === 0) return ok(undefined);
      return ok({
        next: { ...cur, revoked: [...cur.revoked, ...added], crlNumber: shared ? nextCrlNumber(cur.crlNumber) : cur.crlNumber },
      });
    });
    if (!c.ok) return c;
    for (const r of added) log.info('certificate revoked', { serial: r.serial, spiffeId: r.spiffeId, issuer: r.issuer });
    return ok(records.map((r) => toRevoked(revoked.get(r.serial) ?? { ...r, revokedAt: now })));
  };

  const appendIssued = (rec: IssuanceRecord): Result<void, CaError> => (shared ? shared.store.appendIssued(rec) : store.appendIssued(rec));

  const compactIssued = (removed: readonly string[]) => {
    if (removed.length === 0) return;
    if (shared) {
      void shared.store.removeIssued(removed).then((w) => {
        if (!w.ok) log.warn('issuance journal compaction failed', { cause: w.error.message });
      });
      return;
    }
    const w = store.rewriteIssued([...issued.values()]);
    if (!w.ok) log.warn('issuance journal compaction failed', { cause: w.error.message });
  };

  // Shared: other replicas' changes (revocations, rotations, CRL numbers) become ours.
  const unwatch = shared?.store.watch(adopt);
  if (shared && prunable.length > 0 && shared.isLeader()) compactIssued(prunable);

  const rotateRoot = async (
    phase: 'prepare' | 'activate' | 'retire',
    opts: { readonly force?: boolean },
  ): Promise<Result<CaStatus, CaError>> => {
    const makeRoot = shared ? shared.makeRoot : undefined;
    if (!deps.newRoot && !makeRoot) {
      return fail('bad-state', `a ${deps.mode} CA's root is rotated by replacing its plug-in files, not by rotate-root`);
    }
    if (phase === 'retire') {
      const r = await refreshIssued();
      if (!r.ok) return r;
    }
    let forced = 0;
    let madeByUs: Issuer | undefined;
    const c = await change((cur) => {
      const current: RotationPhase = cur.issuers.length === 1 ? 'none' : cur.signing === cur.issuers[0] ? 'prepared' : 'activated';
      if (phase === 'prepare') {
        if (current !== 'none') {
          return fail(
            'bad-state',
            `a root rotation is already in progress (phase ${current}): activate and retire it before preparing another`,
          );
        }
        const n = Math.max(...cur.issuers.map((i) => Number(i.replace(/^root-/, '')) || 0)) + 1;
        // Shared: the material goes into the record with the change; alone, newRoot writes its files first.
        if (makeRoot) madeByUs = makeRoot(`root-${n}`);
        else {
          const m = deps.newRoot!(`root-${n}`);
          if (!m.ok) return m;
          madeByUs = m.value;
        }
        return ok({ next: { ...cur, issuers: [...cur.issuers, madeByUs.id] }, made: [madeByUs] });
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
        return ok({ next: { ...cur, signing: cur.issuers[1]! } });
      }
      if (current !== 'activated') {
        return fail(
          'bad-state',
          current === 'none'
            ? 'no root rotation is in progress: nothing to retire'
            : 'the new root is not active yet: run activate before retire',
        );
      }
      const old = cur.issuers[0]!;
      const oldCa = issuers.find((i) => i.id === old)!;
      const now = clock.now();
      const outstanding = [...issued.values()].filter((r) => r.issuer === old && r.notAfter > now);
      if (outstanding.length > 0 && !opts.force) {
        const last = Math.max(...outstanding.map((r) => r.notAfter));
        return fail(
          'bad-state',
          `${outstanding.length} unexpired, unrevoked SVID(s) signed by the old root '${oldCa.ca.summary.subject}' are still outstanding (the last expires at ${new Date(last).toISOString()}): wait, revoke them, or force`,
        );
      }
      forced = outstanding.length;
      return ok({ next: { ...cur, issuers: [cur.signing], revoked: cur.revoked.filter((r) => r.issuer !== old) } });
    });
    if (!c.ok) {
      if (phase === 'prepare' && madeByUs && !shared) store.removeRootMaterial(madeByUs.id);
      return c;
    }
    if (phase === 'prepare') {
      const next = issuers[issuers.length - 1]!;
      log.info('root rotation prepared', { newRoot: next.ca.summary.subject, fingerprint: next.ca.summary.fingerprint256 });
    } else if (phase === 'activate') {
      log.info('root rotation activated', { signingRoot: signing.ca.summary.subject });
    } else {
      log.warn('old root retired', { forced: opts.force === true, outstanding: forced });
    }
    return ok(status());
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
      // Not recorded, not handed out: revocation and root retirement rely on the record. (Shared:
      // accepted into the store's write-behind queue, written as soon as the store answers.)
      const a = appendIssued(rec);
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

    async revoke(serialHex) {
      const serial = normalizeSerial(serialHex);
      if (serial === undefined) return fail('bad-request', `'${serialHex}' is not a hexadecimal serial number`);
      const prior = revoked.get(serial);
      if (prior) return ok(toRevoked(prior));
      if (!issued.has(serial)) {
        // Shared: the certificate may have been issued by another replica.
        const r = await refreshIssued();
        if (!r.ok) return r;
      }
      const rec = issued.get(serial);
      if (!rec || rec.notAfter <= clock.now()) {
        return fail('unknown-serial', `no unexpired certificate with serial ${serial} was issued by this CA`);
      }
      const r = await revokeRecords([rec]);
      return r.ok ? ok(r.value[0]!) : r;
    },

    async revokeIdentity(id: SpiffeId) {
      const r = await refreshIssued();
      if (!r.ok) return r;
      const now = clock.now();
      return revokeRecords([...issued.values()].filter((x) => x.spiffeId === id && x.notAfter > now));
    },

    async rotateRoot(phase, opts = {}) {
      const beforeIds = issuers.map((i) => i.id);
      const beforeIssued = [...issued.values()];
      const r = await rotateRoot(phase, opts);
      if (!r.ok) return r;
      const gone = beforeIds.filter((id) => !issuers.some((i) => i.id === id));
      if (gone.length > 0) {
        // Material of a retired root is removed after the state that no longer names it (the commit point).
        if (!shared) for (const id of gone) store.removeRootMaterial(id);
        compactIssued(beforeIssued.filter((x) => gone.includes(x.issuer)).map((x) => x.serial));
      }
      return r;
    },

    status,

    maintain() {
      const now = clock.now();
      const expired: string[] = [];
      for (const r of [...issued.values()]) {
        if (r.notAfter <= now) {
          issued.delete(r.serial);
          expired.push(r.serial);
        }
      }
      // Shared: writes to the store (pruning, CRL numbers) are the leader's; every replica prunes its memory.
      const leads = !shared || shared.isLeader();
      const hasExpiredRevocations = [...revoked.values()].some((r) => r.notAfter <= now);
      if (leads && (hasExpiredRevocations || (shared && crlStale()))) {
        void change((cur) => {
          const still = cur.revoked.filter((r) => r.notAfter > clock.now());
          if (still.length === cur.revoked.length && !(shared && crlStale())) return ok(undefined);
          return ok({ next: { ...cur, revoked: still, crlNumber: shared ? nextCrlNumber(cur.crlNumber) : cur.crlNumber } });
        }).then((c) => {
          if (!c.ok) log.warn('state write failed', { cause: c.error.message });
        });
      }
      if (leads) compactIssued(expired);
      // Alone, or a replica whose leader has been silent past three quarters of a CRL's life: re-sign locally.
      if (((!shared && crlStale()) || (shared && crlStale(0.75))) && signCrls()) emit('crl');
    },

    onChange(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },

    close() {
      unwatch?.();
      store.close();
      shared?.store.close();
    },
  };
  return ca;
}
