// Who may see the mesh page: the admin token proves it once (a one-time login code printed by
// `meshpilot serve`, or the token typed into the login form, or a Bearer header), and the browser
// then holds only a random session id in an HttpOnly, SameSite=Strict cookie. The token itself
// and every key stay on the server.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Clock } from '../lib/index.js';

/** The cookie holding the session id. */
export const SESSION_COOKIE = 'meshpilot_session';

/** Login codes, sessions and the checks on a request. */
export interface PageAccess {
  /** A fresh one-time login code, valid for `codeTtlMs`. */
  newLoginCode(): string;
  /** Redeems a one-time code; returns a new session id, or undefined when the code is unknown, used or expired. */
  redeemCode(code: string): string | undefined;
  /** Checks a typed token; returns a new session id when it is the admin token. */
  loginWithToken(token: string): string | undefined;
  /** Whether the request carries a live session cookie or the admin token as a Bearer header. */
  authorized(req: IncomingMessage): boolean;
  /** The Set-Cookie value for a session. */
  cookie(sessionId: string): string;
}

/** Creates the access checks for one admin token. */
export function createPageAccess(deps: {
  token: string;
  clock: Clock;
  codeTtlMs?: number;
  sessionTtlMs?: number;
  /** Oldest sessions are dropped past this many, so logins cannot grow memory. */
  maxSessions?: number;
}): PageAccess {
  const codeTtl = deps.codeTtlMs ?? 10 * 60_000;
  const sessionTtl = deps.sessionTtlMs ?? 12 * 3_600_000;
  const maxSessions = deps.maxSessions ?? 64;
  const codes = new Map<string, number>();
  const sessions = new Map<string, number>();
  const same = (a: string, b: string) => {
    const x = Buffer.from(a);
    const y = Buffer.from(b);
    return x.length === y.length && timingSafeEqual(x, y);
  };
  const sweep = (m: Map<string, number>) => {
    const now = deps.clock.now();
    for (const [k, exp] of m) if (exp <= now) m.delete(k);
  };
  const newSession = () => {
    sweep(sessions);
    while (sessions.size >= maxSessions) sessions.delete(sessions.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    sessions.set(id, deps.clock.now() + sessionTtl);
    return id;
  };
  return {
    newLoginCode() {
      sweep(codes);
      while (codes.size >= maxSessions) codes.delete(codes.keys().next().value!);
      const code = randomBytes(24).toString('base64url');
      codes.set(code, deps.clock.now() + codeTtl);
      return code;
    },
    redeemCode(code) {
      const exp = codes.get(code);
      if (exp === undefined) return undefined;
      codes.delete(code); // one use, even when it came too late
      return exp > deps.clock.now() ? newSession() : undefined;
    },
    loginWithToken: (token) => (same(token, deps.token) ? newSession() : undefined),
    authorized(req) {
      const auth = String(req.headers.authorization ?? '');
      if (auth && same(auth, `Bearer ${deps.token}`)) return true;
      const id = cookieValue(String(req.headers.cookie ?? ''), SESSION_COOKIE);
      const exp = id === undefined ? undefined : sessions.get(id);
      return exp !== undefined && exp > deps.clock.now();
    },
    cookie: (id) => `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.floor(sessionTtl / 1000)}`,
  };
}

/** The value of one cookie in a Cookie header. */
function cookieValue(header: string, name: string): string | undefined {
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}
