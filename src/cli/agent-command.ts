import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { createNodeAgent } from '../agent/index.js';
import {
  CONTROL_PLANE_SERVICE_ACCOUNT,
  DEFAULT_ROOT_NAMESPACE,
  DEFAULT_TRUST_DOMAIN,
  parseSpiffeId,
  parseTrustDomain,
  trustDomainOf,
  workloadId,
  type SpiffeId,
} from '../identity/index.js';
import { err, ok, systemClock, type Result } from '../lib/index.js';
import { parseDuration } from '../model/index.js';
import { createLogger, type LogFormat, type Logger } from '../observability/index.js';
import { logFormatOption } from './log-format-option.js';
import { realTimers } from '../secrets/index.js';
import { parseHostPort } from './serve-command.js';

/** The flags of `meshpilot agent`, as commander hands them over. */
export interface AgentFlags {
  readonly caAddress: string;
  readonly caRoot?: string;
  readonly tokenFile?: string;
  readonly spiffeId?: string;
  readonly namespace?: string;
  readonly serviceAccount?: string;
  readonly trustDomain: string;
  readonly sdsSocket?: string;
  readonly certDir?: string;
  readonly tlsServerName?: string;
  readonly controlPlaneId?: string;
  readonly rootNamespace?: string;
  readonly certTtl?: string;
  readonly logLevel: string;
  readonly logFormat?: LogFormat;
}

/** Checked agent settings: every path and name valid, the root read. */
export interface AgentConfig {
  readonly caAddress: string;
  readonly caRootPem: string;
  readonly tokenFile?: string;
  readonly spiffeId: SpiffeId;
  /** The control plane's SPIFFE ID, pinned: its certificate must name exactly this. */
  readonly controlPlaneId: SpiffeId;
  /** Where the SVID goes: the SDS socket, or the directory of files (exactly one). */
  readonly sdsSocketPath?: string;
  readonly certDir?: string;
  readonly serverName?: string;
  readonly ttlMs?: number;
}

/** Checks the flags, gathering every problem (each names its flag) rather than stopping at the first. */
export function parseAgentFlags(
  f: AgentFlags,
  readFile: (p: string) => string = (p) => readFileSync(p, 'utf8'),
): Result<AgentConfig, string[]> {
  const problems: string[] = [];
  let caAddress = '';
  try {
    const hp = parseHostPort('--ca-address', f.caAddress);
    caAddress = hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
  } catch (e) {
    problems.push((e as Error).message);
  }
  let caRootPem = '';
  if (!f.caRoot) problems.push('--ca-root: the mesh root certificate (root-cert.pem) is required to check the control plane');
  else {
    try {
      caRootPem = readFile(f.caRoot);
      if (!caRootPem.includes('-----BEGIN CERTIFICATE-----')) problems.push(`--ca-root: ${f.caRoot} holds no PEM certificate`);
    } catch (e) {
      problems.push(`--ca-root: cannot read ${f.caRoot}: ${(e as Error).message}`);
    }
  }
  let spiffeId: SpiffeId | undefined;
  if (f.spiffeId !== undefined) {
    if (f.namespace !== undefined || f.serviceAccount !== undefined)
      problems.push('--spiffe-id: give either --spiffe-id or --namespace with --service-account, not both');
    const id = parseSpiffeId(f.spiffeId);
    if (id.ok) spiffeId = id.value;
    else problems.push(`--spiffe-id: ${id.error.message}`);
  } else if (f.namespace === undefined || f.serviceAccount === undefined) {
    problems.push('--namespace and --service-account (or --spiffe-id) name the identity to ask for');
  } else {
    const td = parseTrustDomain(f.trustDomain);
    if (!td.ok) problems.push(`--trust-domain: ${td.error.message}`);
    else {
      const id = workloadId(td.value, f.namespace, f.serviceAccount);
      if (id.ok) spiffeId = id.value;
      else problems.push(`--namespace/--service-account: ${id.error.message}`);
    }
  }
  // As sidecars do: the control plane is the holder of its SPIFFE ID, whatever host name it is reached by.
  let controlPlaneId: SpiffeId | undefined;
  if (f.controlPlaneId !== undefined) {
    const id = parseSpiffeId(f.controlPlaneId);
    if (id.ok) controlPlaneId = id.value;
    else problems.push(`--control-plane-id: ${id.error.message}`);
  } else if (spiffeId) {
    const id = workloadId(trustDomainOf(spiffeId), f.rootNamespace ?? DEFAULT_ROOT_NAMESPACE, CONTROL_PLANE_SERVICE_ACCOUNT);
    if (id.ok) controlPlaneId = id.value;
    else problems.push(`--root-namespace: ${id.error.message}`);
  }
  if (!f.tokenFile) problems.push('--token-file: the first certificate request needs a token');
  if (f.sdsSocket && f.certDir) problems.push('--sds-socket and --cert-dir: give one; the SVID goes to one place');
  else if (!f.sdsSocket && !f.certDir)
    problems.push(
      '--sds-socket (the Unix socket the local Envoy reads its secrets from) or --cert-dir (files for bootstrap --cert-dir) is required',
    );
  let ttlMs: number | undefined;
  if (f.certTtl !== undefined) {
    const d = parseDuration(f.certTtl);
    if (!d.ok) problems.push(`--cert-ttl: ${d.error}`);
    else if (d.value < 1000) problems.push(`--cert-ttl: must be at least 1s (got ${f.certTtl})`);
    else ttlMs = d.value;
  }
  if (problems.length > 0 || !spiffeId || !controlPlaneId) return err(problems);
  return ok({
    caAddress,
    caRootPem,
    spiffeId,
    controlPlaneId,
    ...(f.sdsSocket ? { sdsSocketPath: resolve(f.sdsSocket) } : {}),
    ...(f.certDir ? { certDir: resolve(f.certDir) } : {}),
    ...(f.tokenFile ? { tokenFile: resolve(f.tokenFile) } : {}),
    ...(f.tlsServerName ? { serverName: f.tlsServerName } : {}),
    ...(ttlMs !== undefined ? { ttlMs } : {}),
  });
}

/** Runs the agent until `stopSignal` resolves, then closes and removes the SDS socket. */
export async function runAgent(config: AgentConfig, deps: { log: Logger; stopSignal: Promise<string> }): Promise<void> {
  const agent = createNodeAgent({
    caAddress: config.caAddress,
    caRootPem: config.caRootPem,
    credential: config.tokenFile ? { tokenFile: config.tokenFile } : {},
    spiffeId: config.spiffeId,
    controlPlaneId: config.controlPlaneId,
    ...(config.sdsSocketPath ? { sdsSocketPath: config.sdsSocketPath } : {}),
    ...(config.certDir ? { certDir: config.certDir } : {}),
    ...(config.serverName ? { serverName: config.serverName } : {}),
    ...(config.ttlMs !== undefined ? { ttlMs: config.ttlMs } : {}),
    clock: systemClock,
    timers: realTimers,
    log: deps.log,
  });
  await agent.start();
  // The agent's timers are unref'd; this keeps the process alive until told to stop.
  const keepAlive = setInterval(() => {}, 1 << 30);
  try {
    const signal = await deps.stopSignal;
    deps.log.info('shutting down', { signal });
  } finally {
    clearInterval(keepAlive);
    await agent.stop();
  }
}

/** Adds `meshpilot agent`. */
export function registerAgentCommand(program: Command, deps: { log?: Logger; stopSignal?: Promise<string> } = {}): void {
  program
    .command('agent')
    .description(
      'run the node agent of a workload: make its key, get its SVID by CSR, serve it to the local Envoy over SDS or as files, renew it',
    )
    .option('--ca-address <host:port>', 'the control plane’s TLS port (CSR service)', '127.0.0.1:15012')
    .option('--ca-root <file>', 'the mesh root certificate (root-cert.pem) the control plane’s certificate must chain to')
    .option('--token-file <file>', 'the workload’s token (from `meshpilot token`); re-read on every use')
    .option('--namespace <ns>', 'the workload’s namespace')
    .option('--service-account <sa>', 'the workload’s service account')
    .option('--trust-domain <domain>', 'the mesh trust domain', DEFAULT_TRUST_DOMAIN)
    .option('--spiffe-id <id>', 'the identity to ask for, instead of --namespace/--service-account')
    .option('--sds-socket <path>', 'the Unix socket to serve SDS on (made owner-only; removed on exit)')
    .option(
      '--cert-dir <dir>',
      'instead of --sds-socket: keep key.pem, cert-chain.pem, root-cert.pem and default-sds.yaml in <dir> (for bootstrap --cert-dir; Envoy reloads them)',
    )
    .option('--tls-server-name <name>', 'the TLS server name (SNI) to send; the certificate is checked by SPIFFE ID, not by name')
    .option(
      '--control-plane-id <id>',
      'the control plane’s SPIFFE ID its certificate must carry (default: spiffe://<trust domain>/ns/<root namespace>/sa/meshpilot)',
    )
    .option('--root-namespace <ns>', 'the mesh’s root namespace, where the control plane’s identity lives', DEFAULT_ROOT_NAMESPACE)
    .option('--cert-ttl <duration>', 'requested SVID lifetime (e.g. 1h; the CA clamps it to its maximum)')
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .addOption(logFormatOption())
    .action(async (flags: AgentFlags) => {
      const config = parseAgentFlags(flags);
      if (!config.ok) throw new Error(`agent: ${config.error.join('; ')}`);
      const log = deps.log ?? createLogger({ level: flags.logLevel, format: flags.logFormat, name: 'meshpilot-agent' });
      const stopSignal =
        deps.stopSignal ??
        new Promise<string>((done) => {
          process.once('SIGTERM', () => done('SIGTERM'));
          process.once('SIGINT', () => done('SIGINT'));
        });
      await runAgent(config.value, { log, stopSignal });
    });
}
