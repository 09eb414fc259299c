// `meshpilot status [proxy]`: what each connected sidecar was sent and what it accepted,
// per xDS type, asked of a running control plane over its admin port (like
// `istioctl proxy-status`). Exit codes: 0 shown; 1 the proxy named is not connected;
// 2 no running control plane could be reached or asked.
import { existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import { callAdmin, findAdminEndpoint, type AdminEndpoint } from '../admin/index.js';
import { systemClock, type Clock } from '../lib/index.js';
import type { ProxyReport, TypeStatus } from '../observability/index.js';

/** What the status command needs from outside: injected so tests run it in-process. */
export interface StatusCommandDeps {
  readonly clock?: Clock;
  /** Where normal output goes (default: stdout). */
  readonly write?: (text: string) => void;
}

/** How the CLI reaches a control plane: found from a state directory, or given. */
export type AdminTarget = { readonly stateDir: string } | { readonly url: string; readonly token: string };

/** Why the admin port could not be asked: the CLI's messages, with an exit code each. */
export interface AdminCallError {
  readonly message: string;
  readonly exitCode: number;
}

/** Finds the admin endpoint for the options `--state-dir` or `--admin`/`--token`, or says why there is none. */
export function adminEndpointOf(o: { stateDir?: string; admin?: string; token?: string }): AdminEndpoint | AdminCallError {
  if (o.admin !== undefined) {
    if (o.token === undefined)
      return { message: 'error: --admin needs --token (the admin-token file in the state directory)', exitCode: 2 };
    return { url: o.admin.replace(/\/+$/, ''), token: o.token, pid: 0 };
  }
  if (o.stateDir === undefined)
    return { message: 'error: give --state-dir of the running control plane, or --admin URL --token T', exitCode: 2 };
  if (!existsSync(o.stateDir)) return { message: `error: state directory ${o.stateDir} does not exist`, exitCode: 2 };
  const ep = findAdminEndpoint(o.stateDir);
  if (!ep)
    return {
      message: `error: no running meshpilot found for ${o.stateDir} (it publishes admin.json there while it runs with an admin port)`,
      exitCode: 2,
    };
  return ep;
}

/** Calls the admin API, turning transport failures and refusals into messages. */
export async function askAdmin(ep: AdminEndpoint, method: 'GET' | 'POST', path: string, timeoutMs?: number) {
  let r: { status: number; body: unknown };
  try {
    r = await callAdmin(ep, method, path, undefined, timeoutMs);
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    return { ok: false as const, error: { message: `error: cannot reach the admin server at ${ep.url} (${cause})`, exitCode: 2 } };
  }
  if (r.status === 401)
    return { ok: false as const, error: { message: `error: the admin server at ${ep.url} refused the token`, exitCode: 2 } };
  return { ok: true as const, status: r.status, body: r.body };
}

const isError = (x: AdminEndpoint | AdminCallError): x is AdminCallError => 'exitCode' in x;

/** Registers `meshpilot status` on the program. */
export function registerStatusCommand(program: Command, deps: StatusCommandDeps = {}): Command {
  const clock = deps.clock ?? systemClock;
  const write = deps.write ?? ((t: string) => void process.stdout.write(t));
  return program
    .command('status')
    .description('per connected proxy and xDS type: SYNCED, NOT SENT, STALE or NACKED (with one proxy: its identity, SVID and last NACK)')
    .argument('[proxy]', 'a node id, or a workload as namespace/name')
    .option('--state-dir <dir>', 'state directory of the running control plane (finds its admin port and token)')
    .option('--admin <url>', 'admin server URL, e.g. http://127.0.0.1:15014')
    .option('--token <token>', 'admin token (with --admin)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async function (
      this: Command,
      proxy: string | undefined,
      o: { stateDir?: string; admin?: string; token?: string; output: string },
    ) {
      const ep = adminEndpointOf(o);
      if (isError(ep)) return this.error(ep.message, { exitCode: ep.exitCode });
      const path = proxy === undefined ? '/debug/proxy-status' : `/debug/proxy-status?proxy=${encodeURIComponent(proxy)}`;
      const r = await askAdmin(ep, 'GET', path);
      if (!r.ok) return this.error(r.error.message, { exitCode: r.error.exitCode });
      if (r.status === 404 && proxy !== undefined)
        return this.error(`error: no connected proxy ${proxy} (run 'meshpilot status' to list them)`, { exitCode: 1 });
      if (r.status !== 200) return this.error(`error: the admin server answered ${r.status}: ${JSON.stringify(r.body)}`, { exitCode: 2 });
      if (o.output === 'json') return write(JSON.stringify(r.body, null, 2) + '\n');
      const now = clock.now();
      write(proxy === undefined ? formatTable(r.body as ProxyReport[]) : formatProxy(r.body as ProxyReport, now));
    });
}

/** A type's status cell: STALE says for how long. */
function cell(t: TypeStatus): string {
  return t.status === 'STALE' ? `STALE (${duration(t.pendingMs ?? 0)})` : t.status;
}

/** The proxies as a table, one row each. */
export function formatTable(list: readonly ProxyReport[]): string {
  if (list.length === 0) return 'no proxies connected\n';
  const types = list[0]!.types.map((t) => t.type.toUpperCase());
  // A proxy whose config cannot be built keeps its last one: the CONFIG column says so (shown only then).
  const anyError = list.some((p) => p.configError);
  const rows = [
    ['NODE ID', 'IDENTITY', ...types, ...(anyError ? ['CONFIG'] : [])],
    ...list.map((p) => [
      p.nodeId,
      p.spiffeId ?? p.identity ?? '-',
      ...p.types.map(cell),
      ...(anyError ? [p.configError ? 'NOT BUILT' : 'ok'] : []),
    ]),
  ];
  return columns(rows);
}

/** One proxy in full: workload, identity, SVID, and per type versions, times and the last NACK. */
export function formatProxy(p: ProxyReport, now: number): string {
  let out = `node id:    ${p.nodeId}\n`;
  out += `workload:   ${p.workload ?? '-'}\n`;
  out += `SPIFFE ID:  ${p.spiffeId ?? p.identity ?? '-'}\n`;
  out += p.svid
    ? `SVID:       serial ${p.svid.serialHex}, expires ${iso(p.svid.notAfter)} (in ${duration(p.svid.notAfter - now)})\n`
    : 'SVID:       none held by the control plane (plaintext mode or a node agent)\n';
  out += `connected:  ${iso(p.connectedAt)} (${p.streams} stream${p.streams === 1 ? '' : 's'})\n`;
  if (p.configError)
    out += `config:     NOT BUILT since ${time(p.configError.since)}: keeps its last accepted config\n  cause: ${p.configError.cause}\n`;
  out += '\n';
  out += columns([
    ['TYPE', 'STATUS', 'SENT', 'ACKED'],
    ...p.types.map((t) => [
      t.type.toUpperCase(),
      cell(t),
      t.sent ? `${t.sent.version} at ${time(t.sent.at)}` : '-',
      t.acked ? `${t.acked.version} at ${time(t.acked.at)}` : '-',
    ]),
  ]);
  for (const t of p.types) {
    if (!t.nack) continue;
    out += `\nlast ${t.type.toUpperCase()} NACK: version ${t.nack.version} at ${time(t.nack.at)}${t.status === 'NACKED' ? '' : ' (since superseded)'}\n`;
    out += `  envoy: ${t.nack.error.trim()}\n`;
    for (const r of t.nack.resources) {
      const o = r.origin;
      out += `  rejected ${r.name}${o ? ` <- ${o.kind} ${o.namespace}/${o.name}${o.at ? ` at ${o.at}` : ''}` : ''}\n`;
    }
  }
  return out;
}

function columns(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

const iso = (ms: number) => new Date(ms).toISOString();
const time = (ms: number) => new Date(ms).toISOString().slice(11, 23);

/** A short human duration: 850ms, 12s, 5m3s, 23h59m. */
function duration(ms: number): string {
  const sign = ms < 0 ? '-' : '';
  const a = Math.abs(ms);
  if (a < 1000) return `${sign}${Math.round(a)}ms`;
  const s = Math.floor(a / 1000);
  if (s < 60) return `${sign}${s}s`;
  if (s < 3600) return `${sign}${Math.floor(s / 60)}m${s % 60}s`;
  return `${sign}${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}
