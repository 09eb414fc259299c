// The foreign trust bundles this mesh trusts, one per federated trust domain. Each starts from
// an operator-provided bundle file; a domain with a bundle endpoint is then refreshed as its
// refresh hint says, authenticated with the bundle held before. A refused fetch is logged and
// counted, and the last good bundle keeps serving.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { err, ok, type Clock, type Result } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import { parseSpiffeBundle, splitPem, type BundleProblem, type BundleProblemKind, type SpiffeBundle } from './bundle-format.js';
import { fetchBundle, type BundleFetchRequest } from './bundle-client.js';

/** One federated trust domain, as configured. */
export interface FederatedDomainConfig {
  readonly trustDomain: string;
  /** Absent: a static bundle (air-gapped), read from `trustBundleFile` only. */
  readonly bundleEndpointUrl?: string;
  readonly endpointSpiffeId?: string;
  /** The initial (or static) bundle: a SPIFFE bundle (JSON) or PEM roots. */
  readonly trustBundleFile: string;
}

/** The bundle held for a foreign trust domain. */
export interface ForeignBundle {
  readonly trustDomain: string;
  readonly rootsPem: readonly string[];
  readonly sequence?: number;
  /** Content hash of the roots. */
  readonly version: string;
  /** When it was last fetched or read (ms). */
  readonly updatedAt: number;
}

/** Counted outcomes of refreshes, wired to metrics by main. */
export interface FederationStats {
  onUpdated?(trustDomain: string): void;
  onRefused?(trustDomain: string, reason: BundleProblemKind): void;
}

/** The foreign bundles, kept current. */
export interface FederatedBundles {
  /** Every federated domain's bundle now held, in configuration order. */
  list(): readonly ForeignBundle[];
  /** Subscribes to changes of any bundle's roots; returns the unsubscribe function. */
  onChange(cb: (trustDomain: string) => void): () => void;
  /** Fetches one domain now (tests, operators); resolves with what happened. */
  refresh(trustDomain: string): Promise<Result<'updated' | 'unchanged', BundleProblem>>;
  close(): void;
}

/** Refresh bounds: a hint below the minimum (or absent) cannot make us poll in a loop, one above the maximum cannot make us stop. */
export interface RefreshPolicy {
  readonly defaultMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  /** Wait after a failed fetch before trying again (never longer than the current interval). */
  readonly retryMs: number;
  readonly maxBytes: number;
  readonly timeoutMs: number;
}

/** Five minutes when the publisher gives no hint (SPIFFE Trust Domain and Bundle §6.2). */
export const DEFAULT_REFRESH: RefreshPolicy = {
  defaultMs: 300_000,
  minMs: 1_000,
  maxMs: 3_600_000,
  retryMs: 10_000,
  maxBytes: 256 * 1024,
  timeoutMs: 10_000,
};

interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const versionOf = (roots: readonly string[]) => createHash('sha256').update(roots.join('')).digest('hex').slice(0, 16);

/** Reads a bundle file: a SPIFFE bundle (JSON) or concatenated PEM roots. */
export function readBundleFile(file: string): Result<SpiffeBundle, BundleProblem> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return err({ kind: 'unreadable-file', message: `${file}: ${(e as Error).message}` });
  }
  if (text.trimStart().startsWith('{')) {
    const b = parseSpiffeBundle(text);
    return b.ok ? b : err({ kind: b.error.kind, message: `${file}: ${b.error.message}` });
  }
  const rootsPem = splitPem(text);
  if (rootsPem.length === 0) return err({ kind: 'empty', message: `${file}: neither a SPIFFE bundle (JSON) nor PEM certificates` });
  return ok({ rootsPem, skippedJwtKeys: 0 });
}

/**
 * Loads every domain's initial bundle (an unusable file is an error: federation would trust
 * nothing for that domain) and starts refreshing those with an endpoint.
 */
export function createFederatedBundles(deps: {
  domains: readonly FederatedDomainConfig[];
  clock: Clock;
  timers: Timers;
  log: Logger;
  stats?: FederationStats;
  policy?: Partial<RefreshPolicy>;
  /** Swappable for tests. */
  fetch?: typeof fetchBundle;
}): Result<FederatedBundles, string> {
  const policy = { ...DEFAULT_REFRESH, ...deps.policy };
  const fetch = deps.fetch ?? fetchBundle;
  const held = new Map<string, ForeignBundle>();
  for (const d of deps.domains) {
    const b = readBundleFile(d.trustBundleFile);
    if (!b.ok) return err(`federated trust domain ${d.trustDomain}: trustBundleFile ${b.error.message}`);
    held.set(d.trustDomain, {
      trustDomain: d.trustDomain,
      rootsPem: b.value.rootsPem,
      sequence: b.value.sequence,
      version: versionOf(b.value.rootsPem),
      updatedAt: deps.clock.now(),
    });
    deps.log.info('federated bundle loaded', {
      trustDomain: d.trustDomain,
      file: d.trustBundleFile,
      roots: b.value.rootsPem.length,
      static: !d.bundleEndpointUrl,
    });
  }
  const listeners = new Set<(td: string) => void>();
  const timers = new Map<string, unknown>();
  const inFlight = new Map<string, Promise<Result<'updated' | 'unchanged', BundleProblem>>>();
  let closed = false;

  function schedule(d: FederatedDomainConfig, ms: number): void {
    if (closed) return;
    deps.timers.clearTimeout(timers.get(d.trustDomain));
    timers.set(
      d.trustDomain,
      deps.timers.setTimeout(() => void refreshDomain(d), ms),
    );
  }

  function intervalOf(b: SpiffeBundle | undefined): number {
    const hinted = b?.refreshHintSeconds !== undefined && b.refreshHintSeconds > 0 ? b.refreshHintSeconds * 1000 : policy.defaultMs;
    return Math.min(policy.maxMs, Math.max(policy.minMs, hinted));
  }

  let intervals = new Map<string, number>();

  async function attempt(d: FederatedDomainConfig): Promise<Result<'updated' | 'unchanged', BundleProblem>> {
    const current = held.get(d.trustDomain)!;
    const req: BundleFetchRequest = {
      url: d.bundleEndpointUrl!,
      endpointId: d.endpointSpiffeId!,
      trustedRootsPem: current.rootsPem,
      maxBytes: policy.maxBytes,
      timeoutMs: policy.timeoutMs,
    };
    const r = await fetch(req);
    if (!r.ok) return r;
    const b = r.value;
    intervals.set(d.trustDomain, intervalOf(b));
    const version = versionOf(b.rootsPem);
    if (version === current.version) {
      held.set(d.trustDomain, { ...current, sequence: b.sequence ?? current.sequence, updatedAt: deps.clock.now() });
      return ok('unchanged');
    }
    // A different bundle with a lower sequence number is an old one served again (§4.1.1).
    if (b.sequence !== undefined && current.sequence !== undefined && b.sequence < current.sequence)
      return err({ kind: 'rollback', message: `spiffe_sequence ${b.sequence} is below the held bundle's ${current.sequence}` });
    held.set(d.trustDomain, {
      trustDomain: d.trustDomain,
      rootsPem: b.rootsPem,
      sequence: b.sequence,
      version,
      updatedAt: deps.clock.now(),
    });
    deps.log.info('federated bundle updated', {
      trustDomain: d.trustDomain,
      roots: b.rootsPem.length,
      sequence: b.sequence,
      was: current.version,
      now: version,
    });
    return ok('updated');
  }

  function refreshDomain(d: FederatedDomainConfig): Promise<Result<'updated' | 'unchanged', BundleProblem>> {
    const running = inFlight.get(d.trustDomain);
    if (running) return running;
    const p = attempt(d).then((r) => {
      inFlight.delete(d.trustDomain);
      if (closed) return r;
      const interval = intervals.get(d.trustDomain) ?? policy.defaultMs;
      if (r.ok) {
        if (r.value === 'updated') {
          deps.stats?.onUpdated?.(d.trustDomain);
          for (const l of listeners) l(d.trustDomain);
        }
        schedule(d, interval);
      } else {
        deps.stats?.onRefused?.(d.trustDomain, r.error.kind);
        deps.log.warn('federated bundle refused', {
          trustDomain: d.trustDomain,
          url: d.bundleEndpointUrl,
          reason: r.error.kind,
          cause: r.error.message,
          keeping: held.get(d.trustDomain)?.version,
        });
        schedule(d, Math.min(interval, policy.retryMs));
      }
      return r;
    });
    inFlight.set(d.trustDomain, p);
    return p;
  }

  for (const d of deps.domains) if (d.bundleEndpointUrl) schedule(d, 0);

  return ok({
    list: () => deps.domains.map((d) => held.get(d.trustDomain)!),
    onChange(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    refresh(td) {
      const d = deps.domains.find((x) => x.trustDomain === td);
      if (!d) return Promise.resolve(err({ kind: 'unreachable', message: `${td} is not a federated trust domain` }));
      if (!d.bundleEndpointUrl) return Promise.resolve(ok('unchanged'));
      return refreshDomain(d);
    },
    close() {
      closed = true;
      for (const t of timers.values()) deps.timers.clearTimeout(t);
      intervals = new Map();
    },
  });
}
