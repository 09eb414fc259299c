// The CA state store seam: one versioned record (the CA's roots and their keys, the signing
// CA, revocations, CRL number, the token signing key) changed only by compare-and-swap, a
// watch that reports every other writer's change, and an append-only issuance journal.
// Several processes on one store share one CA. Implementations: memory (here), a state
// directory (dir-shared-store.ts) and etcd (src/store/etcd-ca-store.ts).
import { err, ok } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import { parseTrustDomain } from '../identity/index.js';
import { caError } from './types.js';
import type { CaError } from './types.js';
import type { IssuanceRecord, RevokedRecord } from './state-store.js';

/** The material of one self-signed root: certificate and PKCS#8 private key, PEM. */
export interface RootMaterial {
  readonly certPem: string;
  readonly keyPem: string;
}

/** Everything replicas must agree on, in one record that changes atomically. */
export interface CaRecord {
  readonly format: 1;
  readonly trustDomain: string;
  readonly mode: 'self-signed' | 'plug-in';
  readonly pluginDir?: string;
  /** Issuing CAs whose SVIDs may be outstanding, oldest first: `root-<n>` or `plug-in`. */
  readonly issuers: readonly string[];
  readonly signing: string;
  readonly crlNumber: number;
  readonly revoked: readonly RevokedRecord[];
  /** Root material by issuer id (self-signed mode; empty for plug-in, whose keys stay in its files). */
  readonly roots: Readonly<Record<string, RootMaterial>>;
  /** The proxy token signing key (PKCS#8 PEM), when the store keeps it. */
  readonly tokenKeyPem?: string;
  /** SHA-256 fingerprint of the signing CA certificate (plug-in mode): a replica with other plug-in files is refused. */
  readonly pluginFingerprint?: string;
}

/** A record with the store's revision of it (opaque; compare only for equality). */
export interface Versioned<T> {
  readonly value: T;
  readonly revision: string;
}

/** What a compare-and-swap did: applied (with the new revision), or lost to another writer (with what is there now). */
export type CasOutcome =
  { readonly applied: true; readonly revision: string } | { readonly applied: false; readonly current: Versioned<CaRecord> | undefined };

/** An object the store holds that could not be read; it was skipped. */
export interface StoreProblem {
  /** The etcd key, or file:line. */
  readonly key: string;
  readonly message: string;
}

/** Whether the store answers; writes that need it fail meanwhile, issuance continues from the loaded CA. */
export interface StoreHealth {
  readonly reachable: boolean;
  /** Issuance records accepted but not yet written (etcd write-behind). */
  readonly pendingRecords: number;
  readonly lastError?: string;
}

/** Where the CA's shared state lives. */
export interface CaStateStore {
  /** Where, for messages: 'state directory /x' or 'etcd https://a:2379 key /meshpilot/ca/state'. */
  readonly where: string;
  /** The current record, or undefined when the store holds none yet. */
  load(): Promise<Result<Versioned<CaRecord> | undefined, CaError>>;
  /** Writes next if the record is still at `expected` (undefined: only if there is none yet). */
  compareAndSwap(expected: string | undefined, next: CaRecord): Promise<Result<CasOutcome, CaError>>;
  /** Reports every new revision of the record (another writer's or ours); returns the unsubscribe function. */
  watch(onRecord: (v: Versioned<CaRecord>) => void, onProblem?: (p: StoreProblem) => void): () => void;
  /** Accepts an issuance record: written before return (directory, memory) or queued and retried until written (etcd). */
  appendIssued(r: IssuanceRecord): Result<void, CaError>;
  /** Resolves when every accepted record is written (or fails with why not). */
  flush(): Promise<Result<void, CaError>>;
  /** Every readable issuance record; unreadable ones are skipped and reported. */
  loadIssued(): Promise<Result<{ records: IssuanceRecord[]; skipped: StoreProblem[] }, CaError>>;
  /** Removes records (expired, or of a retired root). */
  removeIssued(serials: readonly string[]): Promise<Result<void, CaError>>;
  health(): StoreHealth;
  close(): void;
}

const bad = (where: string, problem: string): Result<never, CaError> => err(caError('bad-state', `${where}: ${problem}`, where));

/** True when v is a well-formed issuance record. */
export function isIssuanceRecord(v: unknown): v is IssuanceRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.serial === 'string' &&
    /^[0-9a-f]+$/.test(r.serial) &&
    typeof r.issuer === 'string' &&
    typeof r.spiffeId === 'string' &&
    typeof r.notAfter === 'number' &&
    Number.isFinite(r.notAfter)
  );
}

/**
 * Checks the persisted fields every store shares (ca.json's and the record's); `where` names the
 * file or key in every message.
 */
export function checkPersistedFields(v: unknown, where: string): Result<Record<string, unknown>, CaError> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad(where, 'expected a JSON object');
  const s = v as Record<string, unknown>;
  if (s.format !== 1) return bad(where, `unsupported format ${JSON.stringify(s.format)} (expected 1)`);
  if (typeof s.trustDomain !== 'string' || !parseTrustDomain(s.trustDomain).ok)
    return bad(where, 'trustDomain is missing or not a valid trust domain');
  if (s.mode !== 'self-signed' && s.mode !== 'plug-in') return bad(where, `mode must be 'self-signed' or 'plug-in'`);
  if (s.mode === 'plug-in' && typeof s.pluginDir !== 'string') return bad(where, 'pluginDir is missing for a plug-in CA');
  const idRe = s.mode === 'plug-in' ? /^plug-in$/ : /^root-[1-9][0-9]*$/;
  if (
    !Array.isArray(s.issuers) ||
    s.issuers.length < 1 ||
    s.issuers.length > 2 ||
    !s.issuers.every((i) => typeof i === 'string' && idRe.test(i))
  ) {
    return bad(where, 'issuers must list one or two issuing CA ids');
  }
  if (typeof s.signing !== 'string' || !s.issuers.includes(s.signing)) return bad(where, 'signing must be one of issuers');
  if (typeof s.crlNumber !== 'number' || !Number.isSafeInteger(s.crlNumber) || s.crlNumber < 0)
    return bad(where, 'crlNumber must be a non-negative integer');
  if (!Array.isArray(s.revoked)) return bad(where, 'revoked must be a list');
  for (const [i, r] of s.revoked.entries()) {
    if (!isIssuanceRecord(r) || typeof (r as unknown as RevokedRecord).revokedAt !== 'number')
      return bad(where, `revoked[${i}] is not a valid revocation record`);
  }
  return ok(s);
}

/** Parses a whole record (JSON text) as stored by memory and etcd; every message names `where`. */
export function parseCaRecord(text: string, where: string): Result<CaRecord, CaError> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return bad(where, `not valid JSON (${(e as Error).message})`);
  }
  const s = checkPersistedFields(v, where);
  if (!s.ok) return s;
  const roots = s.value.roots;
  if (typeof roots !== 'object' || roots === null || Array.isArray(roots)) return bad(where, 'roots must be an object');
  for (const [id, m] of Object.entries(roots as Record<string, unknown>)) {
    const rm = m as Record<string, unknown> | null;
    if (typeof rm !== 'object' || rm === null || typeof rm.certPem !== 'string' || typeof rm.keyPem !== 'string')
      return bad(where, `roots.${id} must hold certPem and keyPem`);
  }
  if (s.value.mode === 'self-signed')
    for (const id of s.value.issuers as string[]) if (!(id in roots)) return bad(where, `roots.${id} is missing (named in issuers)`);
  if (s.value.tokenKeyPem !== undefined && typeof s.value.tokenKeyPem !== 'string') return bad(where, 'tokenKeyPem must be a string');
  return ok(v as CaRecord);
}

/** Shared storage behind memory stores: several store objects on one backing act as replicas on one store. */
export interface MemoryBacking {
  state?: { text: string; revision: number };
  journal: Map<string, string>;
  revision: number;
  readonly listeners: Set<() => void>;
}

/** A fresh, empty memory backing. */
export const createMemoryBacking = (): MemoryBacking => ({ journal: new Map(), revision: 0, listeners: new Set() });

/** A store in memory (tests, the ephemeral CA); records are kept as JSON text, as etcd would. */
export function createMemoryCaStateStore(backing: MemoryBacking = createMemoryBacking()): CaStateStore {
  const where = 'memory store';
  const read = (): Result<Versioned<CaRecord> | undefined, CaError> => {
    if (!backing.state) return ok(undefined);
    const r = parseCaRecord(backing.state.text, `${where} state`);
    return r.ok ? ok({ value: r.value, revision: String(backing.state.revision) }) : r;
  };
  const mine = new Set<() => void>();
  return {
    where,
    load: () => Promise.resolve(read()),
    compareAndSwap(expected, next) {
      const current = backing.state ? String(backing.state.revision) : undefined;
      if (current !== expected) {
        const cur = read();
        return Promise.resolve(cur.ok ? ok({ applied: false as const, current: cur.value }) : cur);
      }
      backing.revision++;
      backing.state = { text: JSON.stringify(next), revision: backing.revision };
      // Watchers hear of it after the writer has its answer, as with a real store.
      queueMicrotask(() => {
        for (const l of backing.listeners) l();
      });
      return Promise.resolve(ok({ applied: true as const, revision: String(backing.revision) }));
    },
    watch(onRecord, onProblem) {
      let last = backing.state?.revision ?? 0;
      const l = () => {
        if (!backing.state || backing.state.revision === last) return;
        last = backing.state.revision;
        const r = read();
        if (r.ok && r.value) onRecord(r.value);
        else if (!r.ok) onProblem?.({ key: `${where} state`, message: r.error.message });
      };
      backing.listeners.add(l);
      mine.add(l);
      return () => {
        backing.listeners.delete(l);
        mine.delete(l);
      };
    },
    appendIssued(r) {
      backing.journal.set(r.serial, JSON.stringify(r));
      return ok(undefined);
    },
    flush: () => Promise.resolve(ok(undefined)),
    loadIssued() {
      const records: IssuanceRecord[] = [];
      const skipped: StoreProblem[] = [];
      for (const [serial, text] of backing.journal) {
        let v: unknown;
        try {
          v = JSON.parse(text);
        } catch {
          v = undefined;
        }
        if (isIssuanceRecord(v)) records.push(v);
        else skipped.push({ key: `${where} issued/${serial}`, message: 'not a valid issuance record' });
      }
      return Promise.resolve(ok({ records, skipped }));
    },
    removeIssued(serials) {
      for (const s of serials) backing.journal.delete(s);
      return Promise.resolve(ok(undefined));
    },
    health: () => ({ reachable: true, pendingRecords: 0 }),
    close() {
      for (const l of mine) backing.listeners.delete(l);
      mine.clear();
    },
  };
}
