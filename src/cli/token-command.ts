import type { Command } from 'commander';
import { loadOrCreateTokenKey, mintToken } from '../auth/index.js';
import { systemClock } from '../lib/index.js';
import { parseDuration } from '../model/index.js';

/** Adds `meshpilot token`: mints a proxy credential for one service account. */
export function registerTokenCommand(program: Command): void {
  program
    .command('token')
    .description('mint a signed token for one service account (the credential a sidecar presents on its xDS stream)')
    .requiredOption('--state-dir <dir>', 'the state directory that holds the token signing key')
    .requiredOption('--namespace <ns>', 'namespace of the service account')
    .requiredOption('--service-account <sa>', 'service account name')
    .option('--ttl <duration>', 'how long the token is valid (Go duration, e.g. 24h)', '24h')
    .action(async function (this: Command, o: { stateDir: string; namespace: string; serviceAccount: string; ttl: string }) {
      const ttl = parseDuration(o.ttl);
      if (!ttl.ok) this.error(`meshpilot: --ttl: ${ttl.error}`);
      const key = loadOrCreateTokenKey(o.stateDir);
      if (!key.ok) this.error(`meshpilot: ${key.error}`);
      const token = await mintToken({
        key: key.value,
        namespace: o.namespace,
        serviceAccount: o.serviceAccount,
        ttlMs: ttl.value,
        clock: systemClock,
      });
      process.stdout.write(token + '\n');
    });
}
