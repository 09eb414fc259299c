// The connection flags of `meshpilot serve`: caps and the first-request deadline of its ports.
// Kept apart from serve-command.ts so that the flag table and its checks are one unit.
import type { Command } from 'commander';
import {
  DEFAULT_ADMIN_MAX_CONNECTIONS,
  DEFAULT_FIRST_REQUEST_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
  type MeshpilotOptions,
} from '../main.js';
import { err, ok, type Result } from '../lib/index.js';
import { parseDuration } from '../model/index.js';

/** The flags as commander hands them over (strings; absent when not given). */
export interface ConnectionFlags {
  readonly maxConnections?: string;
  readonly maxConnectionsPerSource?: string;
  readonly adminMaxConnections?: string;
  readonly firstRequestTimeout?: string;
}

/** Adds the connection flags to a command. */
export function addConnectionFlags(cmd: Command): Command {
  return cmd
    .option(
      '--max-connections <n>',
      'open connections the xDS port keeps at most (default: the file-descriptor soft limit minus 512, at least 64)',
    )
    .option(
      '--max-connections-per-source <n>',
      `open connections one source address keeps on the xDS port (default ${DEFAULT_MAX_CONNECTIONS_PER_SOURCE})`,
    )
    .option(
      '--admin-max-connections <n>',
      `open connections the admin port keeps at most, in all and per source (default ${DEFAULT_ADMIN_MAX_CONNECTIONS})`,
    )
    .option(
      '--first-request-timeout <duration>',
      `time a connection has, from accept, to finish its TLS handshake and make a request, on every port (default ${DEFAULT_FIRST_REQUEST_TIMEOUT_MS / 1000}s)`,
    );
}

/** Checks the flags; every problem names its flag. */
export function parseConnectionFlags(f: ConnectionFlags): Result<NonNullable<MeshpilotOptions['connectionLimits']>, string[]> {
  const problems: string[] = [];
  const count = (flag: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (/^\d+$/.test(v) && Number.isSafeInteger(n) && n >= 1) return n;
    problems.push(`${flag}: expected a whole number of connections, at least 1 (got ${JSON.stringify(v)})`);
    return undefined;
  };
  const xdsMax = count('--max-connections', f.maxConnections);
  const perSource = count('--max-connections-per-source', f.maxConnectionsPerSource);
  const adminMax = count('--admin-max-connections', f.adminMaxConnections);
  let timeoutMs: number | undefined;
  if (f.firstRequestTimeout !== undefined) {
    const d = parseDuration(f.firstRequestTimeout);
    if (!d.ok) problems.push(`--first-request-timeout: ${d.error}`);
    else if (d.value < 100)
      problems.push(`--first-request-timeout: at least 100ms (a TLS handshake takes longer than that on a busy host)`);
    else timeoutMs = d.value;
  }
  if (problems.length > 0) return err(problems);
  const defined = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
  return ok({
    xds: defined({ maxConnections: xdsMax, maxPerSource: perSource, firstRequestTimeoutMs: timeoutMs }),
    admin: defined({ maxConnections: adminMax, maxPerSource: adminMax, firstRequestTimeoutMs: timeoutMs }),
  });
}
