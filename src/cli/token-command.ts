import type { Command } from 'commander';
import { loadOrCreateTokenKey, mintToken } from '../auth/index.js';
import { writeFileAtomic } from '../ca/index.js';
import { DEFAULT_ROOT_NAMESPACE, reservedServiceAccount } from '../identity/index.js';
import { systemClock } from '../lib/index.js';
import { parseDuration } from '../model/index.js';
import { missingCaState } from './state-dir.js';

/** Adds `meshpilot token`: mints a proxy credential for one service account. */
export function registerTokenCommand(program: Command): void {
  program
    .command('token')
    .description('mint a signed token for one service account (the credential a sidecar presents on its xDS stream)')
    .requiredOption('--state-dir <dir>', 'the state directory that holds the token signing key')
    .requiredOption('--namespace <ns>', 'namespace of the service account')
    .requiredOption('--service-account <sa>', 'service account name')
    .option('--ttl <duration>', 'how long the token is valid (Go duration, e.g. 24h)', '24h')
    .option(
      '--refresh-into <file>',
      'write the token into <file> (0600, replaced atomically) instead of stdout: the token file `meshpilot agent --token-file` re-reads on its next attempt',
    )
    .option('--root-namespace <ns>', "the mesh's root namespace, where the control plane's identity is reserved", DEFAULT_ROOT_NAMESPACE)
    .action(async function (
      this: Command,
      o: { stateDir: string; namespace: string; serviceAccount: string; ttl: string; rootNamespace: string; refreshInto?: string },
    ) {
      // Verifiers refuse such a token anyway; saying so here spares the operator a token that never works.
      const reserved = reservedServiceAccount(o.namespace, o.serviceAccount, o);
      if (reserved) this.error(`meshpilot: ${reserved}: no token is minted for it`);
      const ttl = parseDuration(o.ttl);
      if (!ttl.ok) this.error(`meshpilot: --ttl: ${ttl.error}`);
      const noCa = missingCaState(o.stateDir);
      if (noCa) this.error(`meshpilot: ${noCa}`);
      const key = loadOrCreateTokenKey(o.stateDir);
      if (!key.ok) this.error(`meshpilot: ${key.error}`);
      const token = await mintToken({
        key: key.value,
        namespace: o.namespace,
        serviceAccount: o.serviceAccount,
        ttlMs: ttl.value,
        clock: systemClock,
      });
      if (o.refreshInto === undefined) {
        process.stdout.write(token + '\n');
        return;
      }
      // Atomic, so that an agent reading the file at that moment sees the old token or the new one, whole.
      const w = writeFileAtomic(o.refreshInto, token + '\n');
      if (!w.ok) this.error(`meshpilot: --refresh-into: ${w.error.message}`);
      process.stderr.write(`token for ${o.namespace}/${o.serviceAccount} written to ${o.refreshInto} (valid ${o.ttl})\n`);
    });
}
