import { Option, type Command } from 'commander';
import { ListenError, startMeshpilot } from '../main.js';
import { createLogger, LOG_FORMATS, type LogFormat } from '../observability/index.js';

/** Parses `host:port` (IPv6 in brackets); throws with the flag's name on bad input. */
export function parseHostPort(flag: string, value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`${flag}: expected host:port (e.g. 127.0.0.1:15012), got ${JSON.stringify(value)}`);
  return { host: m[1] ?? m[2]!, port };
}

interface ServeFlags {
  config: string[];
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

/** `--log-format json|pretty`: JSON lines by default unless stderr is a terminal. */
export function logFormatOption(): Option {
  return new Option('--log-format <format>', 'json (one object per line) or pretty; default: pretty on a terminal, json otherwise').choices(
    LOG_FORMATS,
  );
}

/** Adds `meshpilot serve`. */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the control plane: watch the mesh config, run the CA, serve xDS and SDS')
    .requiredOption('--config <paths...>', 'mesh config files or directories (YAML)')
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
    .addOption(logFormatOption())
    .action(async function (this: Command, opts: ServeFlags) {
      const log = createLogger({ level: opts.logLevel, format: opts.logFormat });
      const xds = parseHostPort('--xds-address', opts.xdsAddress);
      const adminPort = Number(opts.adminPort);
      if (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65535)
        throw new Error(`--admin-port: not a port: ${opts.adminPort}`);
      if (opts.insecurePlaintext)
        log.warn('insecure plaintext mode: xDS is neither encrypted nor authenticated; never use it outside local development');
      const mp = await startMeshpilot({
        configPaths: opts.config,
        stateDir: opts.stateDir,
        init: opts.init,
        ephemeral: opts.ephemeral,
        xdsHost: xds.host,
        xdsPort: xds.port,
        adminPort,
        dnsNames: opts.dnsName,
        insecurePlaintext: opts.insecurePlaintext,
        defaultNamespace: opts.namespace,
        secretDir: opts.secretDir,
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
