import type { Command } from 'commander';
import { startMeshpilot } from '../main.js';
import { createLogger } from '../observability/index.js';

/** Parses `host:port` (IPv6 in brackets); throws with the flag's name on bad input. */
export function parseHostPort(flag: string, value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`${flag}: expected host:port (e.g. 127.0.0.1:15012), got ${JSON.stringify(value)}`);
  return { host: m[1] ?? m[2]!, port };
}

/** Adds `meshpilot serve`. */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the control plane: watch the mesh config, run the CA, serve xDS and SDS')
    .requiredOption('--config <paths...>', 'mesh config files or directories (YAML)')
    .option('--state-dir <dir>', 'CA state directory (root key, records); made on first start')
    .option('--ephemeral', 'keep the CA in memory only (a restart makes a new root)')
    .option('--xds-address <host:port>', 'where xDS and SDS are served', '127.0.0.1:15012')
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (opts: { config: string[]; stateDir?: string; ephemeral?: boolean; xdsAddress: string; logLevel: string }) => {
      const log = createLogger({ level: opts.logLevel });
      const xds = parseHostPort('--xds-address', opts.xdsAddress);
      const mp = await startMeshpilot({
        configPaths: opts.config,
        stateDir: opts.stateDir,
        ephemeral: opts.ephemeral,
        xdsHost: xds.host,
        xdsPort: xds.port,
        log,
      });
      log.info('meshpilot serving', { xds: `${xds.host}:${mp.xdsPort}`, trustDomain: mp.ca.trustDomain });
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
