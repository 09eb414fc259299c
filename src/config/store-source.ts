// The config source of replicas: objects kept in a store (etcd), watched, each validated on its own
// with the loader that reads files, then checked together and delivered as one model.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { diffModels, type ChangeSet, type MeshModel } from '../model/index.js';
import type { Logger } from '../observability/index.js';
import { buildParsed } from './build-model.js';
import type { ConfigDiagnostic } from './diagnostics.js';
import type { ConfigSource, Timers } from './file-source.js';
import type { ConfigLimits } from './limits.js';
import type { ConfigObjectStore, StoredObject, StoreEvent, StoreListing, WatchEnd } from './object-store.js';
import type { ParsedObject } from './parse-document.js';
import { decodeStoredObject } from './stored-object.js';

/** Where a store-backed source stands with its store. */
export interface StoreStatus {
  readonly description: string;
  /** True while a watch is established; false while the last config is served without the store. */
  readonly connected: boolean;
  /** The last store revision this source has applied (0 before any). */
  readonly revision: number;
  /** Objects present in the store that cannot be used (corrupted, foreign), by display key. */
  readonly skipped: readonly string[];
}

/** A config source backed by a store, which can say whether it is in touch with it. */
export interface StoreConfigSource extends ConfigSource {
  status(): StoreStatus;
  /** Calls `cb` whenever `connected` changes; returns an unsubscribe function. */
  onStatus(cb: (s: StoreStatus) => void): () => void;
}

/** Options of createStoreConfigSource. */
export interface StoreConfigSourceOptions {
  readonly store: ConfigObjectStore;
  readonly log: Logger;
  /** Checks a model against the running one (boot settings); an error refuses it. */
  readonly admit?: (next: MeshModel, current: MeshModel | undefined) => readonly ConfigDiagnostic[];
  readonly limits?: Partial<ConfigLimits>;
  /** A local file keeping the objects of the last accepted config, for `--allow-stale-start`. */
  readonly cacheFile?: string;
  /** When the store cannot be reached at start, serve the config cached in `cacheFile` instead of failing. */
  readonly allowStaleStart?: boolean;
  /** Quiet period after the last store event before rebuilding (default 50 ms) and the longest wait (default 500 ms). */
  readonly debounceMs?: number;
  readonly maxDelayMs?: number;
  /** Backoff between attempts to reach the store again (default 200 ms doubling to 5 s). */
  readonly retry?: { readonly baseMs: number; readonly maxMs: number };
  readonly timers?: Timers;
  readonly now?: () => number;
}

interface Entry {
  readonly modRevision: number;
  readonly value: string;
  /** The parsed object, when the value is usable. */
  readonly object?: ParsedObject;
  readonly problem?: string;
}

interface CacheFile {
  readonly format: 'meshpilot-config-cache/v1';
  readonly store: string;
  readonly revision: number;
  readonly objects: readonly StoredObject[];
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * Watches a config store and delivers each new valid model. A broken watch resumes after the last
 * revision applied; one whose history was compacted away reloads everything and applies the
 * difference. Either way every change is applied once, in revision order, and a model is delivered
 * only when it differs from the last one, so nothing is lost or delivered twice.
 */
export function createStoreConfigSource(opts: StoreConfigSourceOptions): StoreConfigSource {
  const { store, log } = opts;
  const timers = opts.timers ?? realTimers;
  const now = opts.now ?? Date.now;
  const debounceMs = opts.debounceMs ?? 50;
  const maxDelayMs = Math.max(opts.maxDelayMs ?? 500, debounceMs);
  const retry = opts.retry ?? { baseMs: 200, maxMs: 5_000 };

  const entries = new Map<string, Entry>();
  // The last usable version of each key: a corrupted update keeps the object as it was (a
  // corrupted DENY policy must not vanish and open access), and is reported.
  const lastGood = new Map<string, ParsedObject>();
  const subscribers = new Map<(model: MeshModel, changes: ChangeSet) => void, MeshModel | undefined>();
  const statusListeners = new Set<(s: StoreStatus) => void>();
  let model: MeshModel | undefined;
  let diagnostics: readonly ConfigDiagnostic[] = [];
  let revision = 0;
  let connected = false;
  let closed = false;
  let watch: { cancel(): void } | undefined;
  let rebuildTimer: unknown;
  let burstStart: number | undefined;
  let retryTimer: unknown;
  let backoff = retry.baseMs;
  let disconnectedSince: number | undefined;

  const status = (): StoreStatus => ({
    description: store.description,
    connected,
    revision,
    skipped: [...entries].filter(([, e]) => !e.object).map(([k]) => store.displayKey(k)),
  });

  function setConnected(c: boolean, why?: string): void {
    if (c === connected) return;
    connected = c;
    if (c) {
      const downMs = disconnectedSince === undefined ? undefined : now() - disconnectedSince;
      disconnectedSince = undefined;
      backoff = retry.baseMs;
      log.info('config store connected', { store: store.description, revision, ...(downMs !== undefined ? { downMs } : {}) });
    } else {
      disconnectedSince = now();
      log.warn('config store unreachable: serving the last config', {
        store: store.description,
        revision,
        version: model?.version,
        cause: why,
      });
    }
    const s = status();
    for (const l of statusListeners) l(s);
  }

  function decode(key: string, modRevision: number, value: string): Entry {
    const d = decodeStoredObject(key, store.displayKey(key), value, opts.limits);
    if (d.ok) return { modRevision, value, object: d.object };
    const kept = lastGood.has(key);
    log.error('config object skipped', {
      key: store.displayKey(key),
      modRevision,
      reason: d.reason,
      ...(kept ? { keeps: 'its last good version' } : {}),
    });
    return { modRevision, value, problem: d.reason };
  }

  function put(key: string, modRevision: number, value: string): void {
    const cur = entries.get(key);
    // Already applied (a resumed watch or a reload can bring it again): nothing to do.
    if (cur && cur.modRevision === modRevision) return;
    const e = decode(key, modRevision, value);
    entries.set(key, e);
    if (e.object) lastGood.set(key, e.object);
  }

  function remove(key: string): void {
    entries.delete(key);
    lastGood.delete(key);
  }

  function applyEvents(events: readonly StoreEvent[], rev: number): void {
    // A revision at or below the one applied was already seen (never applied twice).
    if (rev <= revision) return;
    for (const e of events) {
      if (e.modRevision <= revision) continue;
      if (e.type === 'put') put(e.key, e.modRevision, e.value);
      else remove(e.key);
    }
    revision = rev;
    scheduleRebuild();
  }

  function applyListing(l: StoreListing): void {
    const seen = new Set<string>();
    for (const o of l.objects) {
      seen.add(o.key);
      put(o.key, o.modRevision, o.value);
    }
    for (const key of [...entries.keys()]) if (!seen.has(key)) remove(key);
    revision = l.revision;
  }

  function scheduleRebuild(): void {
    if (closed) return;
    const t = now();
    burstStart ??= t;
    const due = Math.min(t + debounceMs, burstStart + maxDelayMs);
    if (rebuildTimer !== undefined) timers.clearTimeout(rebuildTimer);
    rebuildTimer = timers.setTimeout(
      () => {
        rebuildTimer = undefined;
        burstStart = undefined;
        rebuild();
      },
      Math.max(0, due - t),
    );
  }

  function deliver(m: MeshModel, cb: (model: MeshModel, changes: ChangeSet) => void): void {
    const before = subscribers.get(cb);
    subscribers.set(cb, m);
    try {
      cb(m, diffModels(before, m));
    } catch (e) {
      log.error('config subscriber failed', { version: m.version, error: (e as Error).message });
    }
  }

  /** Builds the model from every usable object; returns whether it was accepted. */
  function rebuild(): boolean {
    if (closed) return false;
    const keys = [...entries.keys()].sort();
    // As with files: an empty config would withdraw every workload from the mesh.
    if (keys.length === 0) {
      diagnostics = [
        {
          severity: 'error',
          file: store.description,
          path: '',
          message: 'the config store holds no config objects: write them with `meshpilot apply -f`',
        },
      ];
      log.error('config rejected', { store: store.description, message: diagnostics[0]!.message });
      return false;
    }
    const objects: ParsedObject[] = [];
    for (const k of keys) {
      const o = entries.get(k)!.object ?? lastGood.get(k);
      if (o) objects.push(o);
    }
    const inputs = keys.map((k) => ({ fileName: store.displayKey(k) }));
    const result = buildParsed(inputs, { objects, diagnostics: [], syntaxErrors: false });
    const skipped: ConfigDiagnostic[] = keys.flatMap((k) => {
      const e = entries.get(k)!;
      return e.problem === undefined
        ? []
        : [{ severity: 'warning' as const, file: store.displayKey(k), line: 1, path: '', message: `skipped: ${e.problem}` }];
    });
    const refused = result.model && opts.admit ? opts.admit(result.model, model).filter((d) => d.severity === 'error') : [];
    diagnostics = [...skipped, ...result.diagnostics, ...refused];
    if (!result.model || refused.length > 0) {
      for (const d of [...result.diagnostics, ...refused])
        if (d.severity === 'error')
          log.error('config rejected', { key: d.file, line: d.line, column: d.column, path: d.path, message: d.message });
      if (model) log.warn('config keeps last good version', { version: model.version, revision });
      return false;
    }
    if (model && result.model.version === model.version) {
      log.debug('config unchanged', { version: model.version, revision });
      writeCache();
      return true;
    }
    for (const d of result.diagnostics)
      if (d.severity === 'warning') log.warn('config warning', { key: d.file, line: d.line, path: d.path, message: d.message });
    model = result.model;
    log.info('config accepted', { version: model.version, objects: objects.length, revision, store: store.description });
    writeCache();
    for (const cb of [...subscribers.keys()]) if (!closed) deliver(model, cb);
    return true;
  }

  function writeCache(): void {
    if (!opts.cacheFile) return;
    const body: CacheFile = {
      format: 'meshpilot-config-cache/v1',
      store: store.description,
      revision,
      objects: [...entries].map(([key, e]) => ({ key, value: e.value, modRevision: e.modRevision })),
    };
    try {
      mkdirSync(dirname(opts.cacheFile), { recursive: true, mode: 0o700 });
      const tmp = `${opts.cacheFile}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(body), { mode: 0o600 });
      renameSync(tmp, opts.cacheFile);
    } catch (e) {
      log.warn('config cache not written', { file: opts.cacheFile, error: (e as Error).message });
    }
  }

  function readCache(): CacheFile | string {
    if (!opts.cacheFile) return 'no cache file configured';
    try {
      const c = JSON.parse(readFileSync(opts.cacheFile, 'utf8')) as CacheFile;
      if (c.format !== 'meshpilot-config-cache/v1' || !Array.isArray(c.objects)) return `${opts.cacheFile} is not a meshpilot config cache`;
      return c;
    } catch (e) {
      return `${opts.cacheFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    }
  }

  function startWatch(): void {
    if (closed) return;
    watch?.cancel();
    const from = revision;
    watch = store.watch(from, {
      started: () => {
        if (!closed) setConnected(true);
      },
      events: (events, rev) => {
        if (!closed) applyEvents(events, rev);
      },
      ended: (why) => onEnded(why),
    });
  }

  function onEnded(why: WatchEnd): void {
    if (closed) return;
    watch = undefined;
    if (why.kind === 'compacted') log.warn('config watch compacted: reloading', { store: store.description, revision, cause: why.message });
    else setConnected(false, why.message);
    scheduleRetry(why.kind === 'compacted' ? 'reload' : 'resume');
  }

  function scheduleRetry(what: 'resume' | 'reload'): void {
    if (closed || retryTimer !== undefined) return;
    const wait = what === 'reload' && connected ? 0 : backoff;
    backoff = Math.min(backoff * 2, retry.maxMs);
    retryTimer = timers.setTimeout(() => {
      retryTimer = undefined;
      if (what === 'resume') return startWatch();
      void store.list().then(
        (l) => {
          if (closed) return;
          applyListing(l);
          scheduleRebuild();
          startWatch();
        },
        (e: unknown) => {
          setConnected(false, (e as Error).message);
          scheduleRetry('reload');
        },
      );
    }, wait);
  }

  async function first(): Promise<void> {
    let listing: StoreListing;
    try {
      listing = await store.list();
    } catch (e) {
      const cause = (e as Error).message;
      if (!opts.allowStaleStart) {
        diagnostics = [
          {
            severity: 'error',
            file: store.description,
            path: '',
            message: `the config store cannot be reached: ${cause}${opts.cacheFile ? ` (--allow-stale-start serves the last config cached in ${opts.cacheFile})` : ''}`,
          },
        ];
        return;
      }
      const cache = readCache();
      if (typeof cache === 'string') {
        diagnostics = [
          {
            severity: 'error',
            file: store.description,
            path: '',
            message: `the config store cannot be reached (${cause}) and there is no cached config: ${cache}`,
          },
        ];
        return;
      }
      log.warn('config store unreachable at start: serving the cached config', {
        store: store.description,
        cause,
        cache: opts.cacheFile,
        revision: cache.revision,
        cachedFrom: cache.store,
      });
      applyListing({ revision: cache.revision, objects: cache.objects });
      disconnectedSince = now();
      rebuild();
      scheduleRetry('reload');
      return;
    }
    applyListing(listing);
    rebuild();
    setConnected(true);
    startWatch();
  }

  const ready = first().catch((e: unknown) => {
    log.error('config store source failed', { error: (e as Error).message });
  });

  return {
    subscribe(cb) {
      if (closed) throw new Error('config source is closed');
      subscribers.set(cb, undefined);
      if (model) deliver(model, cb);
      return () => void subscribers.delete(cb);
    },
    current: () => model,
    lastDiagnostics: () => diagnostics,
    ready: () => ready,
    status,
    onStatus(cb) {
      statusListeners.add(cb);
      return () => void statusListeners.delete(cb);
    },
    close() {
      if (closed) return;
      closed = true;
      watch?.cancel();
      if (rebuildTimer !== undefined) timers.clearTimeout(rebuildTimer);
      if (retryTimer !== undefined) timers.clearTimeout(retryTimer);
      subscribers.clear();
      statusListeners.clear();
    },
  };
}
