// How the CLI finds a running control plane that owns a state directory: the server
// writes `admin.json` (address, pid) and `admin-token` (0600) there at start and removes
// them at a clean stop. Reading the token needs the same rights as the state directory.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../ca/index.js';

/** The files in the state directory. */
export const ADMIN_FILE = 'admin.json';
export const ADMIN_TOKEN_FILE = 'admin-token';

/** Where a running control plane's admin port is. */
export interface AdminEndpoint {
  readonly url: string;
  readonly token: string;
  readonly pid: number;
}

/** Records the admin endpoint and its token in the state directory. */
export function publishAdminEndpoint(stateDir: string, url: string, token: string): { unpublish(): void } {
  const t = writeFileAtomic(join(stateDir, ADMIN_TOKEN_FILE), token);
  if (!t.ok) throw new Error(t.error.message);
  const f = writeFileAtomic(join(stateDir, ADMIN_FILE), JSON.stringify({ url, pid: process.pid }) + '\n');
  if (!f.ok) throw new Error(f.error.message);
  return {
    unpublish() {
      rmSync(join(stateDir, ADMIN_FILE), { force: true });
      rmSync(join(stateDir, ADMIN_TOKEN_FILE), { force: true });
    },
  };
}

/** The endpoint of a live control plane owning the state directory, if there is one (a stale file from a crash is ignored). */
export function findAdminEndpoint(stateDir: string): AdminEndpoint | undefined {
  const file = join(stateDir, ADMIN_FILE);
  if (!existsSync(file)) return undefined;
  try {
    const { url, pid } = JSON.parse(readFileSync(file, 'utf8')) as { url: string; pid: number };
    process.kill(pid, 0); // throws when no such process: the file outlived a crash
    return { url, pid, token: readFileSync(join(stateDir, ADMIN_TOKEN_FILE), 'utf8').trim() };
  } catch {
    return undefined;
  }
}

/** Calls a live control plane's admin API; resolves with the status and parsed body. */
export async function callAdmin(
  ep: AdminEndpoint,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  /** How long to wait for the answer; calls that wait on the mesh (revoke with proof) pass more than the default. */
  timeoutMs = 10_000,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${ep.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ep.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: res.status, body: await res.json() };
}
