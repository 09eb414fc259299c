// Fetches the JWKS of every jwksUri the policies name, so the control plane can inline keys into
// jwt_authn (the proxy never fetches). The last good key set of each URI is kept: a failed fetch
// or a response that is not a JWKS is logged and changes nothing, so keys never fall back to
// anything but what the issuer last published.
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import type { Clock } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import { checkJwksTarget, DEFAULT_JWKS_FETCH_POLICY, type HostLookup, type JwksFetchPolicy, type JwksTarget } from './jwks-target.js';
import type { JwksVia } from './jwks-discovery.js';
import { checkJwks } from './request-authentication.js';

/**
 * Keeps the last good JWKS of each URI it is asked about, refreshed periodically. With `via:
 * 'discovery'` the URI is an OpenID Provider's discovery document (OpenID Connect Discovery 1.0
 * §4), and the keys are those of the `jwks_uri` it names.
 */
export interface JwksFetcher {
  /**
   * The last good JWKS text of a URI; else why there is none (the last failure), or undefined
   * before the first fetch ended. The first call for a URI starts fetching it.
   */
  get(uri: string, via?: JwksVia): string | { readonly error: string } | undefined;
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
  readonly uri: string;
  readonly via: JwksVia;
  keys?: string;
  /** Why the last fetch failed, while there are no keys. */
  error?: string;
  fetchedAt?: number;
  inflight?: Promise<void>;
}

// Resolves or rejects with p, or rejects after ms: name resolution has no time limit of its own.
async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

type Fetched = { status: number; location?: string; text?: string };

// One GET to the checked address: the URL's host still names the server for TLS (SNI and
// certificate check), but the connection goes to the address that was checked, whatever DNS
// says now. Redirects are not followed: their target was never checked.
function getPinned(target: JwksTarget, o: { timeoutMs: number; maxBytes: number; ca?: string }): Promise<Fetched> {
  const pinned: LookupFunction = (_host, opts, cb) => {
    if (opts.all) cb(null, [{ address: target.address, family: target.family }]);
    else cb(null, target.address, target.family);
  };
  const options: RequestOptions & { ca?: string } = {
    method: 'GET',
    headers: { accept: 'application/json' },
    lookup: pinned,
    signal: AbortSignal.timeout(o.timeoutMs),
    ...(o.ca ? { ca: o.ca } : {}),
  };
  const send = target.url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(target.url, options, (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status >= 300) {
        res.resume();
        resolve({ status, ...(res.headers.location ? { location: res.headers.location } : {}) });
        return;
      }
      const declared = Number(res.headers['content-length']);
      if (declared > o.maxBytes) {
        res.destroy();
        resolve({ status });
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > o.maxBytes) {
          res.destroy();
          resolve({ status });
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => resolve({ status, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
      // A body cut short (the time limit aborted it, the server went away) may end with 'close'
      // alone; settling here keeps the fetch from waiting forever. A settled promise ignores this.
      res.on('close', () => reject(new Error('connection closed before the response ended')));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Creates a JWKS fetcher: an HTTPS GET to a checked public address (see JwksFetchPolicy) with a
 * time limit and a size cap, the last good keys per URI, a warning on every failure, and a
 * refresh of all known URIs every `refreshMs` (default 20 min, Istio's default). At most
 * `maxUris` URIs are tracked; more are refused with a warning.
 */
export function createJwksFetcher(deps: {
  clock: Clock;
  log: Logger;
  /** What jwksUris may reach; default HTTPS to public addresses only. */
  policy?: Partial<JwksFetchPolicy>;
  /** Host name resolution; default the system resolver (tests inject one and never use DNS). */
  lookup?: HostLookup;
  /** Extra trusted roots (PEM) for HTTPS, besides Node's; for tests. */
  ca?: string;
  refreshMs?: number;
  /** Time limit of one fetch, resolution to last byte; default 5 s. */
  timeoutMs?: number;
  /** Largest JWKS accepted, in bytes; default 1 MiB. */
  maxBytes?: number;
  maxUris?: number;
  timers?: IntervalTimers;
}): JwksFetcher {
  const policy: JwksFetchPolicy = { ...DEFAULT_JWKS_FETCH_POLICY, ...deps.policy };
  const timeoutMs = deps.timeoutMs ?? 5_000;
  const maxBytes = deps.maxBytes ?? 1 << 20;
  const maxUris = deps.maxUris ?? 256;
  const timers = deps.timers ?? realTimers;
  const entries = new Map<string, Entry>();
  const listeners = new Set<(uri: string) => void>();
  let refusedLogged = false;

  type Got = { ok: true; text: string } | { ok: false; cause: string };

  // One checked GET: the SSRF guard (checkJwksTarget) on the URL, no redirects, a size cap.
  async function getChecked(uri: string, what: string): Promise<Got> {
    const target = await withTimeout(checkJwksTarget(uri, policy, deps.lookup), timeoutMs, `resolving the ${what} host`);
    if (!target.ok) return { ok: false, cause: `refused: ${target.error}` };
    const res = await getPinned(target.value, { timeoutMs, maxBytes, ...(deps.ca ? { ca: deps.ca } : {}) });
    if (res.status >= 300 && res.status < 400)
      return { ok: false, cause: `http status ${res.status}: redirects are not followed (to ${res.location ?? '?'})` };
    if (res.status < 200 || res.status >= 300) return { ok: false, cause: `http status ${res.status}` };
    if (res.text === undefined) return { ok: false, cause: `response larger than ${maxBytes} bytes` };
    return { ok: true, text: res.text };
  }

  // OpenID discovery: the document must be a JSON object whose `jwks_uri` is a URL on the
  // document's own scheme (https, or http only where plain http is allowed): a document fetched
  // over https may not send the key fetch to plaintext. The jwks_uri passes the same guard.
  async function discoverJwksUri(uri: string): Promise<{ ok: true; jwksUri: string } | { ok: false; cause: string }> {
    const doc = await getChecked(uri, 'discovery document');
    if (!doc.ok) return doc;
    let parsed: unknown;
    try {
      parsed = JSON.parse(doc.text);
    } catch {
      return { ok: false, cause: 'malformed discovery document: not JSON' };
    }
    const jwksUri =
      parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as { jwks_uri?: unknown }).jwks_uri : undefined;
    if (typeof jwksUri !== 'string' || jwksUri === '') return { ok: false, cause: 'malformed discovery document: no jwks_uri string' };
    let url: URL;
    try {
      url = new URL(jwksUri);
    } catch {
      return { ok: false, cause: `malformed discovery document: jwks_uri ${JSON.stringify(jwksUri)} is not a URL` };
    }
    const scheme = new URL(uri).protocol;
    if (url.protocol !== scheme && url.protocol !== 'https:')
      return {
        ok: false,
        cause: `jwks_uri ${jwksUri} is on another scheme (${url.protocol}) than the discovery document (${scheme}): refused`,
      };
    return { ok: true, jwksUri };
  }

  async function fetchOne(e: Entry): Promise<void> {
    const { uri } = e;
    const fail = (cause: string) => {
      deps.log.warn('jwks fetch failed, keeping last good keys', {
        uri,
        ...(e.via === 'discovery' ? { via: 'openid discovery' } : {}),
        cause,
        haveKeys: e.keys !== undefined,
        ...(e.fetchedAt !== undefined ? { keysAgeMs: deps.clock.now() - e.fetchedAt } : {}),
      });
      // Without keys, the failure is what policies report; a new one is news for them.
      if (e.keys === undefined && e.error !== cause) {
        e.error = cause;
        for (const cb of listeners) cb(uri);
      }
    };
    try {
      let jwksUri = uri;
      if (e.via === 'discovery') {
        const d = await discoverJwksUri(uri);
        if (!d.ok) return fail(d.cause);
        jwksUri = d.jwksUri;
      }
      const got = await getChecked(jwksUri, e.via === 'discovery' ? 'jwks_uri' : 'jwksUri');
      if (!got.ok) return fail(e.via === 'discovery' ? `jwks_uri ${jwksUri}: ${got.cause}` : got.cause);
      const text = got.text;
      const problem = checkJwks(text);
      if (problem) return fail(e.via === 'discovery' ? `jwks_uri ${jwksUri}: ${problem}` : problem);
      const changed = text !== e.keys;
      e.keys = text;
      e.error = undefined;
      e.fetchedAt = deps.clock.now();
      if (changed) {
        deps.log.info('jwks updated', { uri, ...(e.via === 'discovery' ? { jwksUri } : {}) });
        for (const cb of listeners) cb(uri);
      }
    } catch (err) {
      fail((err as Error).message);
    }
  }

  function start(e: Entry): Promise<void> {
    e.inflight ??= fetchOne(e).finally(() => {
      e.inflight = undefined;
    });
    return e.inflight;
  }

  const handle = timers.setInterval(() => void refresh(), deps.refreshMs ?? 20 * 60_000);

  async function refresh(): Promise<void> {
    await Promise.all([...entries.values()].map((e) => start(e)));
  }

  return {
    get(uri, via = 'jwks') {
      const key = `${via} ${uri}`;
      let e = entries.get(key);
      if (!e) {
        if (entries.size >= maxUris) {
          if (!refusedLogged) deps.log.warn('jwks uri not tracked: too many uris', { uri, maxUris });
          refusedLogged = true;
          return undefined;
        }
        e = { uri, via };
        entries.set(key, e);
        void start(e);
      }
      return e.keys ?? (e.error !== undefined ? { error: e.error } : undefined);
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
