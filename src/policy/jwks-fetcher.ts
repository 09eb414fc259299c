// Fetches the JWKS of every jwksUri the policies name, so the control plane can inline keys into
// jwt_authn (the proxy never fetches). The last good key set of each URI is kept: a failed fetch
// or a response that is not a JWKS is logged and changes nothing, so keys never fall back to
// anything but what the issuer last published.
import type { Clock } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import { checkJwks } from './request-authentication.js';

/** Keeps the last good JWKS of each URI it is asked about, refreshed periodically. */
export interface JwksFetcher {
  /** The last good JWKS text of a URI, or undefined; the first call for a URI starts fetching it. */
  get(uri: string): string | undefined;
  /** Fetches every known URI now; resolves when every fetch has finished (failed fetches included). */
  refresh(): Promise<void>;
  /** Calls `cb` when the keys of a URI change (so policies can be compiled and pushed again); returns an unsubscribe. */
  onChange(cb: (uri: string) => void): () => void;
  /** Stops the periodic refresh. */
  close(): void;
}

/** The interval timer the fetcher uses, injectable for tests. */
export interface IntervalTimers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const realTimers: IntervalTimers = {
  setInterval: (fn, ms) => {
    const h = setInterval(fn, ms);
    h.unref();
    return h;
  },
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

interface Entry {
  keys?: string;
  fetchedAt?: number;
  inflight?: Promise<void>;
}

/**
 * Creates a JWKS fetcher: http(s) GET with a timeout and a size cap, the last good keys per URI,
 * a warning on every failure, and a refresh of all known URIs every `refreshMs` (default 20 min,
 * Istio's default). At most `maxUris` URIs are tracked; more are refused with a warning.
 */
export function createJwksFetcher(deps: {
  clock: Clock;
  log: Logger;
  fetch?: typeof globalThis.fetch;
  refreshMs?: number;
  timeoutMs?: number;
  maxBytes?: number;
  maxUris?: number;
  timers?: IntervalTimers;
}): JwksFetcher {
  const doFetch = deps.fetch ?? globalThis.fetch;
  const timeoutMs = deps.timeoutMs ?? 5_000;
  const maxBytes = deps.maxBytes ?? 1 << 20;
  const maxUris = deps.maxUris ?? 256;
  const timers = deps.timers ?? realTimers;
  const entries = new Map<string, Entry>();
  const listeners = new Set<(uri: string) => void>();
  let refusedLogged = false;

  async function readCapped(res: Response): Promise<string | undefined> {
    if (!res.body) return '';
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel();
        return undefined;
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  async function fetchOne(uri: string, e: Entry): Promise<void> {
    const fail = (cause: string) =>
      deps.log.warn('jwks fetch failed, keeping last good keys', {
        uri,
        cause,
        haveKeys: e.keys !== undefined,
        ...(e.fetchedAt !== undefined ? { keysAgeMs: deps.clock.now() - e.fetchedAt } : {}),
      });
    try {
      const res = await doFetch(uri, {
        signal: AbortSignal.timeout(timeoutMs),
        headers: { accept: 'application/json' },
        redirect: 'follow',
      });
      if (!res.ok) {
        await res.body?.cancel();
        return fail(`http status ${res.status}`);
      }
      const text = await readCapped(res);
      if (text === undefined) return fail(`response larger than ${maxBytes} bytes`);
      const problem = checkJwks(text);
      if (problem) return fail(problem);
      const changed = text !== e.keys;
      e.keys = text;
      e.fetchedAt = deps.clock.now();
      if (changed) {
        deps.log.info('jwks updated', { uri });
        for (const cb of listeners) cb(uri);
      }
    } catch (err) {
      fail((err as Error).message);
    }
  }

  function start(uri: string, e: Entry): Promise<void> {
    e.inflight ??= fetchOne(uri, e).finally(() => {
      e.inflight = undefined;
    });
    return e.inflight;
  }

  const handle = timers.setInterval(() => void refresh(), deps.refreshMs ?? 20 * 60_000);

  async function refresh(): Promise<void> {
    await Promise.all([...entries].map(([uri, e]) => start(uri, e)));
  }

  return {
    get(uri) {
      let e = entries.get(uri);
      if (!e) {
        if (entries.size >= maxUris) {
          if (!refusedLogged) deps.log.warn('jwks uri not tracked: too many uris', { uri, maxUris });
          refusedLogged = true;
          return undefined;
        }
        e = {};
        entries.set(uri, e);
        void start(uri, e);
      }
      return e.keys;
    },
    refresh,
    onChange(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    close() {
      timers.clearInterval(handle);
    },
  };
}
