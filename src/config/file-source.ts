import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { systemClock, type Clock } from '../lib/index.js';
import { diffModels, type ChangeSet, type MeshModel } from '../model/index.js';
import type { Logger } from '../observability/index.js';
import type { ConfigDiagnostic } from './diagnostics.js';
import type { ConfigLimits } from './limits.js';
import { loadConfig } from './load.js';

/** A source of mesh models: delivers the current good model and every later valid change. */
export interface ConfigSource {
  /**
   * Calls `cb` with the current model now (if there is one) and with each new valid model,
   * with what changed since the model it delivered before; returns an unsubscribe function.
   */
  subscribe(cb: (model: MeshModel, changes: ChangeSet) => void): () => void;
  /** The last good model, if any load has succeeded. */
  current(): MeshModel | undefined;
  /** Diagnostics of the most recent load attempt (errors when it was rejected, else warnings). */
  lastDiagnostics(): readonly ConfigDiagnostic[];
  /** Resolves once the first load attempt has finished, good or not. */
  ready(): Promise<void>;
  /** Stops watching and delivering; idempotent. */
  close(): void;
}

/** Timer functions, injectable so tests can drive the debounce. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Options of createFileConfigSource. */
export interface FileConfigSourceOptions {
  /** Files and directories (their `*.yaml`/`*.yml` files) that together make the config. */
  readonly paths: readonly string[];
  readonly log: Logger;
  /** Quiet period after the last file event before reloading; default 100 ms. */
  readonly debounceMs?: number;
  /** Longest wait after the first event of a burst before reloading anyway; default 1000 ms. */
  readonly maxDelayMs?: number;
  readonly clock?: Clock;
  readonly timers?: Timers;
  /** Checks a loaded model against the running one (settings read once at start); an error refuses it like any invalid config. */
  readonly admit?: (next: MeshModel, current: MeshModel | undefined) => readonly ConfigDiagnostic[];
  /** Raises or lowers the config size limits (defaults in CONFIG_LIMITS). */
  readonly limits?: Partial<ConfigLimits>;
  /** The namespace of documents that name none (`serve --namespace`); default `default`. */
  readonly defaultNamespace?: string;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * Watches config files and directories and delivers each new valid model. Editors and `mv` replace
 * files (a rename, not a write), and Kubernetes volumes swap a `..data` symlink, so the parent
 * directory is watched rather than the file, and every burst of events triggers a full reload.
 */
export function createFileConfigSource(opts: FileConfigSourceOptions): ConfigSource {
  const { paths, log } = opts;
  const debounceMs = opts.debounceMs ?? 100;
  const maxDelayMs = Math.max(opts.maxDelayMs ?? 1000, debounceMs);
  const clock = opts.clock ?? systemClock;
  const timers = opts.timers ?? realTimers;

  const subscribers = new Map<(model: MeshModel, changes: ChangeSet) => void, MeshModel | undefined>();
  const watchers = new Map<string, FSWatcher>();
  // Directory → the entry names that matter in it, or 'all' for a configured directory.
  const interest = new Map<string, Set<string> | 'all'>();
  let model: MeshModel | undefined;
  let diagnostics: readonly ConfigDiagnostic[] = [];
  let closed = false;
  let timer: unknown;
  let burstStart: number | undefined;
  let loading: Promise<void> | undefined;
  let again = false;

  function deliver(m: MeshModel, cb: (model: MeshModel, changes: ChangeSet) => void): void {
    const before = subscribers.get(cb);
    subscribers.set(cb, m);
    try {
      cb(m, diffModels(before, m));
    } catch (e) {
      log.error('config subscriber failed', { version: m.version, error: (e as Error).message });
    }
  }

  function onEvent(dir: string, entry: string | null): void {
    if (closed) return;
    const wanted = interest.get(dir);
    // `..data` and friends: the Kubernetes atomic writer swapping a volume's contents.
    if (wanted !== 'all' && entry !== null && !entry.startsWith('..') && !wanted?.has(entry)) return;
    const now = clock.now();
    burstStart ??= now;
    const due = Math.min(now + debounceMs, burstStart + maxDelayMs);
    if (timer !== undefined) timers.clearTimeout(timer);
    timer = timers.setTimeout(
      () => {
        timer = undefined;
        burstStart = undefined;
        void reload();
      },
      Math.max(0, due - now),
    );
  }

  async function ensureWatchers(): Promise<void> {
    for (const p of paths) {
      // A missing path counts as a file: its parent is watched so that its creation is seen.
      const isDir = await stat(p).then(
        (s) => s.isDirectory(),
        () => false,
      );
      const dir = isDir ? p : dirname(p);
      if (isDir) interest.set(dir, 'all');
      else {
        const cur = interest.get(dir);
        if (cur !== 'all') interest.set(dir, new Set([...(cur ?? []), basename(p)]));
      }
    }
    for (const dir of interest.keys()) {
      if (closed || watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: true }, (_event, entry) => onEvent(dir, entry === null ? null : String(entry)));
        w.on('error', (e) => {
          log.warn('config watch failed', { dir, error: e.message });
          w.close();
          watchers.delete(dir);
          onEvent(dir, null);
        });
        watchers.set(dir, w);
        log.debug('config watch started', { dir });
      } catch (e) {
        log.warn('config watch failed', { dir, error: (e as Error).message });
      }
    }
  }

  async function loadOnce(): Promise<void> {
    const result = await loadConfig(paths, {
      limits: opts.limits,
      ...(opts.defaultNamespace !== undefined ? { defaultNamespace: opts.defaultNamespace } : {}),
    });
    if (closed) return;
    diagnostics = result.diagnostics;
    await ensureWatchers();
    const refused = result.model && opts.admit ? opts.admit(result.model, model).filter((d) => d.severity === 'error') : [];
    if (refused.length > 0) diagnostics = [...result.diagnostics, ...refused];
    if (!result.model || refused.length > 0) {
      for (const d of diagnostics) {
        const fields = { file: d.file, line: d.line, column: d.column, path: d.path, message: d.message };
        if (d.severity === 'error') log.error('config rejected', fields);
        else if (d.severity === 'warning') log.warn('config warning', fields);
        else log.info('config note', fields);
      }
      if (model) log.warn('config keeps last good version', { version: model.version });
      return;
    }
    if (model && result.model.version === model.version) {
      log.debug('config unchanged', { version: model.version });
      return;
    }
    for (const d of result.diagnostics)
      (d.severity === 'info' ? log.info : log.warn)(d.severity === 'info' ? 'config note' : 'config warning', {
        file: d.file,
        line: d.line,
        column: d.column,
        path: d.path,
        message: d.message,
      });
    model = result.model;
    log.info('config accepted', { version: model.version, files: result.files.length });
    for (const cb of [...subscribers.keys()]) if (!closed) deliver(model, cb);
  }

  function reload(): Promise<void> {
    if (loading) {
      again = true;
      return loading;
    }
    loading = (async () => {
      do {
        again = false;
        try {
          await loadOnce();
        } catch (e) {
          log.error('config load failed', { error: (e as Error).message });
        }
      } while (again && !closed);
    })().finally(() => {
      loading = undefined;
    });
    return loading;
  }

  const first = ensureWatchers().then(reload);

  return {
    subscribe(cb) {
      if (closed) throw new Error('config source is closed');
      subscribers.set(cb, undefined);
      if (model) deliver(model, cb);
      return () => {
        subscribers.delete(cb);
      };
    },
    current: () => model,
    lastDiagnostics: () => diagnostics,
    ready: () => first,
    close() {
      if (closed) return;
      closed = true;
      if (timer !== undefined) timers.clearTimeout(timer);
      for (const w of watchers.values()) w.close();
      watchers.clear();
      subscribers.clear();
    },
  };
}
