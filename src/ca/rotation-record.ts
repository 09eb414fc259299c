// A gated root rotation run by the replicas together (shared CA store): the request and the
// step it reached live in the store beside the CA record, so whichever replica leads drives it
// and the next leader resumes it; each replica publishes what its own proxies ACKed, so the
// gates see the proxies of every replica. Implementations: memory (here) and etcd
// (src/store/etcd-rotation-store.ts).
import { err, ok } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import type { Versioned } from './shared-store.js';

/** Where the rotation is: the next thing the driver does. */
export type RotationStep = 'prepare' | 'bundle' | 'activate' | 'svids' | 'retire';

/** One requested gated rotation; `state` is `running` until it completes or is held back. */
export interface RotationRecord {
  readonly format: 1;
  readonly id: string;
  /** The replica whose admin port accepted the request. */
  readonly requestedBy: string;
  readonly startedAt: number;
  readonly forceRetire: boolean;
  /** How long each gate waits for the mesh before the rotation is held. */
  readonly gateTimeoutMs: number;
  readonly state: 'running' | 'complete' | 'held';
  readonly step: RotationStep;
  /** When the current gate started waiting (a new leader keeps the same deadline). */
  readonly gateSince?: number;
  /** The replica driving it now (the leader). */
  readonly driver?: string;
  /** Why it is held, or what the last step did. */
  readonly message?: string;
  readonly updatedAt: number;
}

/** What one replica's proxies ACKed, judged against the bundle or signing CA named in `judgedAgainst`. */
export interface AckReport {
  readonly replica: string;
  readonly rotationId: string;
  readonly stage: 'bundle' | 'svids';
  /** Root fingerprints (bundle) or the signing CA's fingerprint (svids) the replica judged with. */
  readonly judgedAgainst: string;
  readonly proxies: number;
  readonly missing: readonly { readonly nodeId: string; readonly reason: string }[];
  readonly at: number;
}

/** Where the rotation record and the replicas' reports live. Errors are messages naming the store. */
export interface RotationStore {
  readonly where: string;
  load(): Promise<Result<Versioned<RotationRecord> | undefined, string>>;
  /** Writes next if the record is still at `expected` (undefined: only if none); false when another writer won. */
  compareAndSwap(expected: string | undefined, next: RotationRecord): Promise<Result<boolean, string>>;
  /** Publishes this replica's report; it disappears when the replica dies (lease) or closes. */
  publish(report: AckReport): Promise<Result<void, string>>;
  /** The reports of every live replica. */
  reports(): Promise<Result<AckReport[], string>>;
  /** The names of the live replicas (the election's candidates): each must have reported before a gate opens. */
  replicas(): Promise<Result<string[], string>>;
  close(): Promise<void>;
}

const STEPS: readonly string[] = ['prepare', 'bundle', 'activate', 'svids', 'retire'];

/** Parses a stored rotation record; messages name `where`. */
export function parseRotationRecord(text: string, where: string): Result<RotationRecord, string> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return err(`${where}: not valid JSON (${(e as Error).message})`);
  }
  const r = v as Record<string, unknown> | null;
  if (typeof r !== 'object' || r === null || r.format !== 1) return err(`${where}: expected a rotation record of format 1`);
  if (typeof r.id !== 'string' || typeof r.requestedBy !== 'string') return err(`${where}: id and requestedBy must be strings`);
  if (r.state !== 'running' && r.state !== 'complete' && r.state !== 'held')
    return err(`${where}: state must be running, complete or held`);
  if (typeof r.step !== 'string' || !STEPS.includes(r.step)) return err(`${where}: step must be one of ${STEPS.join(', ')}`);
  for (const f of ['startedAt', 'gateTimeoutMs', 'updatedAt'] as const)
    if (typeof r[f] !== 'number' || !Number.isFinite(r[f])) return err(`${where}: ${f} must be a number`);
  if (typeof r.forceRetire !== 'boolean') return err(`${where}: forceRetire must be a boolean`);
  return ok(v as RotationRecord);
}

/** Parses a replica's report, or undefined when it is not one (skipped). */
export function parseAckReport(text: string): AckReport | undefined {
  try {
    const r = JSON.parse(text) as Record<string, unknown>;
    if (
      typeof r.replica === 'string' &&
      typeof r.rotationId === 'string' &&
      (r.stage === 'bundle' || r.stage === 'svids') &&
      typeof r.judgedAgainst === 'string' &&
      typeof r.proxies === 'number' &&
      Array.isArray(r.missing)
    )
      return r as unknown as AckReport;
  } catch {
    // not JSON: skipped
  }
  return undefined;
}

/** Shared backing of memory rotation stores (several stores on one backing act as replicas). */
export interface MemoryRotationBacking {
  record?: { text: string; revision: number };
  revision: number;
  readonly reports: Map<string, string>;
  /** The live replicas (what the election's candidates are in etcd). */
  readonly members: Set<string>;
}

export const createMemoryRotationBacking = (): MemoryRotationBacking => ({ revision: 0, reports: new Map(), members: new Set() });

/** A rotation store in memory for `replica` (a live member until closed); `close` removes its report, as an expired lease would. */
export function createMemoryRotationStore(backing: MemoryRotationBacking, replica?: string): RotationStore {
  const where = 'memory store rotation';
  const mine = new Set<string>();
  if (replica !== undefined) backing.members.add(replica);
  return {
    where,
    load() {
      if (!backing.record) return Promise.resolve(ok(undefined));
      const r = parseRotationRecord(backing.record.text, where);
      return Promise.resolve(r.ok ? ok({ value: r.value, revision: String(backing.record.revision) }) : r);
    },
    compareAndSwap(expected, next) {
      const current = backing.record ? String(backing.record.revision) : undefined;
      if (current !== expected) return Promise.resolve(ok(false));
      backing.revision++;
      backing.record = { text: JSON.stringify(next), revision: backing.revision };
      return Promise.resolve(ok(true));
    },
    publish(report) {
      mine.add(report.replica);
      backing.reports.set(report.replica, JSON.stringify(report));
      return Promise.resolve(ok(undefined));
    },
    reports() {
      const out: AckReport[] = [];
      for (const text of backing.reports.values()) {
        const r = parseAckReport(text);
        if (r) out.push(r);
      }
      return Promise.resolve(ok(out));
    },
    replicas: () => Promise.resolve(ok([...backing.members])),
    close() {
      for (const r of mine) backing.reports.delete(r);
      if (replica !== undefined) backing.members.delete(replica);
      return Promise.resolve();
    },
  };
}
