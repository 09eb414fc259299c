// The live mesh page on the admin port: a static page (HTML, CSS, one script, no build step)
// and its data, a JSON view and a server-sent event stream of the same view. Changes are
// coalesced (at most one view per `minIntervalMs`) and the view is built once per send, for
// every open page, only while a page is open: nothing here runs per proxy on the push path.
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import { createPageAccess } from './page-access.js';
import type { MeshView } from './mesh-view.js';

/** The page's HTTP routes, for the admin server to try before its own. */
export interface MeshPage {
  /** Handles the request when it is one of the page's routes; resolves false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>;
  /** Marks the view changed; open pages get it within `minIntervalMs`. */
  changed(): void;
  /** A one-time login link for the page on `baseUrl`. */
  loginLink(baseUrl: string): string;
  close(): void;
}

// The static files sit beside this module: `make build` copies src/admin/page into dist; a
// compile without that copy (tests run from dist) reads them from the source tree.
function pageDir(): string {
  const beside = fileURLToPath(new URL('./page/', import.meta.url));
  if (existsSync(beside)) return beside;
  return fileURLToPath(new URL('../../../src/admin/page/', import.meta.url));
}

const STATIC: Record<string, { file: string; type: string; public: boolean }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8', public: false },
  '/page.js': { file: 'page.js', type: 'text/javascript; charset=utf-8', public: false },
  '/page.css': { file: 'page.css', type: 'text/css; charset=utf-8', public: true },
};

// No inline script or style may run, and nothing is fetched from elsewhere: even a name that
// slipped into markup could not execute.
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/** Creates the page over a view builder; `token` is the admin token that unlocks it. */
export function createMeshPage(deps: {
  token: string;
  view: () => MeshView;
  clock: Clock;
  log: Logger;
  minIntervalMs?: number;
  /** A view is also sent this often while pages are open (expiry countdowns, STALE needs time). */
  refreshMs?: number;
}): MeshPage {
  const access = createPageAccess({ token: deps.token, clock: deps.clock });
  const minInterval = deps.minIntervalMs ?? 250;
  const dir = pageDir();
  const files = new Map<string, Buffer>();
  const read = (name: string) => {
    let b = files.get(name);
    if (!b) files.set(name, (b = readFileSync(dir + name)));
    return b;
  };
  const clients = new Set<ServerResponse>();
  let timer: NodeJS.Timeout | undefined;
  let lastSent = 0;

  const broadcast = () => {
    timer = undefined;
    if (clients.size === 0) return;
    lastSent = deps.clock.now();
    let frame: string;
    try {
      frame = `event: view\ndata: ${JSON.stringify(deps.view())}\n\n`;
    } catch (e) {
      deps.log.error('mesh view failed', { cause: String(e) });
      return;
    }
    for (const c of clients) c.write(frame);
  };
  // Bursts (a push reaching 1,000 proxies is 5,000 ACKs) become one view per interval.
  const changed = () => {
    if (timer || clients.size === 0) return;
    const wait = Math.max(0, lastSent + minInterval - deps.clock.now());
    timer = setTimeout(broadcast, wait);
    timer.unref();
  };
  const refresh = setInterval(changed, deps.refreshMs ?? 5_000);
  refresh.unref();
  const keepAlive = setInterval(() => {
    for (const c of clients) c.write(': keep-alive\n\n');
  }, 15_000);
  keepAlive.unref();

  const redirect = (res: ServerResponse, to: string, cookie?: string) => {
    res.writeHead(303, { location: to, ...SECURITY_HEADERS, ...(cookie ? { 'set-cookie': cookie } : {}) });
    res.end();
  };
  const loginPage = (res: ServerResponse, status: number, message?: string) => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...SECURITY_HEADERS });
    res.end(loginHtml(message));
  };

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const path = url.pathname;
    if (req.method === 'GET' && path === '/' && url.searchParams.has('login')) {
      const session = access.redeemCode(url.searchParams.get('login') ?? '');
      if (!session) {
        deps.log.warn('mesh page login refused', { reason: 'unknown, used or expired login code' });
        loginPage(res, 401, 'That login link was already used or has expired. Paste the admin token instead.');
        return true;
      }
      deps.log.info('mesh page login', { via: 'one-time code' });
      redirect(res, '/', access.cookie(session));
      return true;
    }
    if (req.method === 'POST' && path === '/login') {
      const form = new URLSearchParams(await readBody(req, 4096));
      const session = access.loginWithToken((form.get('token') ?? '').trim());
      if (!session) {
        deps.log.warn('mesh page login refused', { reason: 'wrong admin token' });
        loginPage(res, 401, 'That is not the admin token.');
        return true;
      }
      deps.log.info('mesh page login', { via: 'token' });
      redirect(res, '/', access.cookie(session));
      return true;
    }
    const file = req.method === 'GET' ? STATIC[path] : undefined;
    if (file) {
      if (!file.public && !access.authorized(req)) {
        loginPage(res, path === '/' ? 200 : 401);
        return true;
      }
      res.writeHead(200, { 'content-type': file.type, ...SECURITY_HEADERS });
      res.end(read(file.file));
      return true;
    }
    if (req.method === 'GET' && (path === '/mesh/view' || path === '/mesh/events')) {
      if (!access.authorized(req)) {
        deps.log.warn('admin request refused', { route: path, reason: 'missing or wrong admin token or session' });
        res.writeHead(401, { 'content-type': 'application/json', ...SECURITY_HEADERS });
        res.end('{"error":"unauthorized"}\n');
        return true;
      }
      if (path === '/mesh/view') {
        res.writeHead(200, { 'content-type': 'application/json', ...SECURITY_HEADERS });
        res.end(JSON.stringify(deps.view()));
        return true;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', ...SECURITY_HEADERS, connection: 'keep-alive' });
      res.write('retry: 2000\n\n');
      clients.add(res);
      req.on('close', () => clients.delete(res));
      // The new page gets a view at once (coalesced with anyone else's).
      lastSent = 0;
      changed();
      return true;
    }
    return false;
  }

  return {
    handle,
    changed,
    loginLink: (base) => `${base}/?login=${access.newLoginCode()}`,
    close() {
      clearInterval(refresh);
      clearInterval(keepAlive);
      if (timer) clearTimeout(timer);
      for (const c of clients) c.end();
      clients.clear();
    },
  };
}

/** Reads a small request body; a larger one is cut at `limit` bytes (the form holds one token). */
async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  let body = '';
  for await (const c of req) {
    body += String(c);
    if (body.length > limit) return body.slice(0, limit);
  }
  return body;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The login form: the admin token is posted once and never stored in the page. */
function loginHtml(message?: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>meshpilot: sign in</title><link rel="stylesheet" href="/page.css"></head>
<body class="login"><main class="card">
<h1>meshpilot</h1>
<p>Open the one-time link <code>meshpilot serve</code> printed, or paste the admin token
(the <code>admin-token</code> file in the state directory).</p>
${message ? `<p class="error">${escapeHtml(message)}</p>` : ''}
<form method="post" action="/login"><label>Admin token <input name="token" type="password" autocomplete="off" required autofocus></label>
<button type="submit">Sign in</button></form>
</main></body></html>
`;
}
