import { join } from 'node:path';
import type { Command } from 'commander';
import { createStoreConfigSource } from '../config/index.js';
import { ListenError, startMeshpilot, type MeshpilotOptions } from '../main.js';
import { createLogger, type LogFormat } from '../observability/index.js';
import { logFormatOption } from './log-format-option.js';
import { addPkcs11Options, pkcs11RefFromFlags } from './pkcs11-flags.js';
import type { Pkcs11Flags } from './pkcs11-flags.js';
import { addConnectionFlags, parseConnectionFlags, type ConnectionFlags } from './connection-flags.js';
import { openEtcdConfigStore } from './config-store-commands.js';
import { addCaStoreOptions, parseCaStoreFlags } from '../store/index.js';
import type { CaStoreFlags } from '../store/index.js';

/** Parses `host:port` (IPv6 in brackets); throws with the flag's name on bad input. */
export function parseHostPort(flag: string, value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`${flag}: expected host:port (e.g. 127.0.0.1:15012), got ${JSON.stringify(value)}`);
  return { host: m[1] ?? m[2]!, port };
}

interface ServeFlags extends CaStoreFlags, Pkcs11Flags {
  config?: string[];
  configStore: string;
  allowStaleStart?: boolean;
  configCache?: string;
  maxStreams?: string;
  stateDir?: string;
  init?: boolean;
  ephemeral?: boolean;
  xdsAddress: string;
  adminPort: string;
  dnsName?: string[];
  insecurePlaintext?: boolean;
  namespace?: string;
  allowPlainHttpJwks?: boolean;
  allowPrivateJwksHosts?: boolean;
  logLevel: string;
  logFormat?: LogFormat;
  secretDir?: string;
}

/** Adds `meshpilot serve`. */
export function registerServeCommand(program: Command): void {
  const cmd = program
    .command('serve')
    .description('run the control plane: watch the mesh config, run the CA, serve xDS and SDS')
    .option('--config <paths...>', 'mesh config files or directories (YAML); with --config-store files (the default)')
    .option(
      '--config-store <store>',
      "where the mesh config lives: 'files' (--config) or 'etcd' (written by meshpilot apply; the --etcd-* flags)",
      'files',
    )
    .option('--allow-stale-start', 'etcd config store: if etcd cannot be reached at start, serve the last config seen (--config-cache)')
    .option('--config-cache <file>', 'etcd config store: local copy of the last config seen (default <state-dir>/config-cache.json)')
    .option(
      '--max-streams <n>',
      'most xDS streams this replica serves; more are refused with UNAVAILABLE so that Envoy tries another replica',
    )
    .option('--state-dir <dir>', 'CA state directory (root key, records), made by `meshpilot ca init` or by --init')
    .option('--init', 'create the CA in --state-dir if it holds none (without it, a directory with no CA is refused)')
    .option('--ephemeral', 'keep the CA in memory only (a restart makes a new root)')
    .option('--xds-address <host:port>', 'where xDS, SDS and the CSR service are served (TLS)', '127.0.0.1:15012')
    .option('--admin-port <port>', 'loopback port for metrics, debug and CA operations', '15014')
    .option('--dns-name <names...>', 'extra DNS names in the control plane certificate')
    .option('--insecure-plaintext', 'serve xDS in plaintext with no authentication (local development only)')
    .option('--namespace <ns>', 'namespace of config documents that name none (as kubectl apply -n)')
    .option('--allow-plain-http-jwks', 'let jwksUri use plain HTTP (development only; HTTPS by default)')
    .option('--allow-private-jwks-hosts', 'let jwksUri reach loopback and private addresses (metadata addresses stay refused)')
    .option(
      '--secret-dir <dir>',
      "keep each workload service account's key.pem, cert-chain.pem and root-cert.pem under <dir>/<namespace>/<service-account>/ (renewed, replaced after revocation)",
    )
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .addOption(logFormatOption());
  addConnectionFlags(cmd);
  addPkcs11Options(cmd);
  addCaStoreOptions(cmd).action(async function (this: Command, opts: ServeFlags & ConnectionFlags) {
    const log = createLogger({ level: opts.logLevel, format: opts.logFormat });
    const xds = parseHostPort('--xds-address', opts.xdsAddress);
    const adminPort = Number(opts.adminPort);
    if (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65535) throw new Error(`--admin-port: not a port: ${opts.adminPort}`);
    const caStore = parseCaStoreFlags(opts);
    if (!caStore.ok) throw new Error(caStore.error);
    const caPkcs11 = pkcs11RefFromFlags(opts, log);
    if (!caPkcs11.ok) throw new Error(caPkcs11.error);
    if (caPkcs11.value && caStore.value)
      throw new Error(
        '--ca-pkcs11-*: not supported with --ca-store etcd yet (replicas share the CA key through the store); keep the key in a token with --state-dir',
      );
    const connectionLimits = parseConnectionFlags(opts);
    if (!connectionLimits.ok) throw new Error(connectionLimits.error.join('\n'));
    const configSource = configSourceOf(opts);
    let maxStreams: number | undefined;
    if (opts.maxStreams !== undefined) {
      maxStreams = Number(opts.maxStreams);
      if (!Number.isInteger(maxStreams) || maxStreams < 1)
        throw new Error(`--max-streams: expected a positive whole number, got ${opts.maxStreams}`);
    }
    if (opts.insecurePlaintext)
      log.warn('insecure plaintext mode: xDS is neither encrypted nor authenticated; never use it outside local development');
    const mp = await startMeshpilot({
      configPaths: opts.config ?? [],
      ...(configSource ? { configSource } : {}),
      ...(maxStreams !== undefined ? { maxStreams } : {}),
      stateDir: opts.stateDir,
      init: opts.init,
      ephemeral: opts.ephemeral,
      ...(caPkcs11.value ? { caPkcs11: caPkcs11.value } : {}),
      xdsHost: xds.host,
      xdsPort: xds.port,
      adminPort,
      dnsNames: opts.dnsName,
      insecurePlaintext: opts.insecurePlaintext,
      defaultNamespace: opts.namespace,
      secretDir: opts.secretDir,
      connectionLimits: connectionLimits.value,
      ...(caStore.value ? { caStore: caStore.value } : {}),
      jwksFetchPolicy: { allowPlainHttp: opts.allowPlainHttpJwks === true, allowPrivateHosts: opts.allowPrivateJwksHosts === true },
      log,
    }).catch((e: unknown) => {
      if (!(e instanceof ListenError)) throw e;
      // Name the flag that moves the listener that could not be bound.
      const flag = e.listener === 'xds' ? '--xds-address <host:port>' : '--admin-port <port>';
      const fix =
        e.code === 'EADDRINUSE'
          ? `another process (another meshpilot?) holds it; stop it or choose another with ${flag}`
          : `choose another with ${flag}`;
      return this.error(`error: ${e.message}: ${fix}`, { exitCode: 1, code: 'meshpilot.listen' });
    });
    log.info('meshpilot serving', {
      xds: `${xds.host}:${mp.xdsPort}`,
      admin: `127.0.0.1:${mp.adminPort}`,
      trustDomain: mp.ca.trustDomain,
      tls: mp.secure,
    });
    // The one-time link signs a browser in to the mesh page (the code works once, for 10 minutes).
    const link = mp.meshPageLink();
    if (link) process.stdout.write(`mesh page: http://127.0.0.1:${mp.adminPort}/\none-time login link: ${link}\n`);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('shutting down', { signal });
      mp.stop().then(
        () => process.exit(0),
        (e: unknown) => {
          log.error('shutdown failed', { cause: String(e) });
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

// Files need --config; etcd needs the --etcd-* flags and takes no --config (one source of truth).
function configSourceOf(o: ServeFlags): MeshpilotOptions['configSource'] {
  if (o.configStore === 'files') {
    if (!o.config?.length) throw new Error('--config: required with --config-store files (the mesh config files or directories)');
    for (const f of ['allowStaleStart', 'configCache'] as const)
      if (o[f] !== undefined) throw new Error(`--${f.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}: only with --config-store etcd`);
    return undefined;
  }
  if (o.configStore !== 'etcd') throw new Error(`--config-store: expected files or etcd, got ${JSON.stringify(o.configStore)}`);
  if (o.config?.length) throw new Error('--config: not with --config-store etcd; write the config with `meshpilot apply -f` instead');
  const cacheFile = o.configCache ?? (o.stateDir ? join(o.stateDir, 'config-cache.json') : undefined);
  if (o.allowStaleStart && !cacheFile)
    throw new Error('--allow-stale-start: needs --config-cache FILE or --state-dir (where the last config seen is kept)');
  const store = openEtcdConfigStore(o);
  return ({ log, admit }) => {
    const source = createStoreConfigSource({
      store,
      log,
      admit,
      ...(cacheFile ? { cacheFile } : {}),
      allowStaleStart: o.allowStaleStart === true,
    });
    return {
      source,
      status: () => {
        const s = source.status();
        return { connected: s.connected, revision: s.revision, skipped: s.skipped.length };
      },
      close: () => store.close(),
    };
  };
}
