import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { hostsFileFor, type ServiceVip } from '../capture/index.js';
import { loadConfig } from '../config/index.js';
import { formatDiagnostic } from '../lib/index.js';
import type { MeshModel } from '../model/index.js';

interface HostsFlags {
  config: string[];
  namespace: string;
  out?: string;
}

/** Where the command writes; tests capture it. */
export interface HostsIo {
  write(s: string): void;
  warn(s: string): void;
  setExitCode(code: number): void;
}

const processIo: HostsIo = {
  write: (s) => process.stdout.write(s),
  warn: (s) => process.stderr.write(s),
  setExitCode: (c) => (process.exitCode = c),
};

/** The services of a model that have a VIP, as name resolution sees them. */
export function serviceVipsOf(model: MeshModel): ServiceVip[] {
  return model.services.flatMap((s) => (s.vip !== undefined ? [{ name: s.name, namespace: s.namespace, vip: s.vip }] : []));
}

/** Adds `meshpilot hosts`: writes the hosts file that gives a namespace's unmodified apps service names (capture mode). */
export function registerHostsCommand(program: Command, io: HostsIo = processIo): void {
  program
    .command('hosts')
    .description(
      'write the hosts file of a namespace in capture mode: each service VIP under <svc>.<ns>.svc.<domain>, <svc>.<ns>, ' +
        "and its short name within the same namespace ('ip netns exec NS' reads /etc/netns/NS/hosts as /etc/hosts)",
    )
    .requiredOption('--config <path...>', 'config files or directories')
    .requiredOption('--namespace <ns>', 'the namespace whose apps read the file (short names resolve within it)')
    .option('--out <file>', 'write here instead of stdout')
    .action(async (o: HostsFlags) => {
      const loaded = await loadConfig(o.config);
      for (const d of loaded.diagnostics) io.warn(`${d.severity}: ${formatDiagnostic(d)}\n`);
      if (!loaded.model) {
        io.warn('meshpilot hosts: the config has errors; nothing written\n');
        io.setExitCode(1);
        return;
      }
      const entries = loaded.model.serviceEntries.flatMap((e) => (e.vip !== undefined ? [{ hosts: e.hosts, vip: e.vip }] : []));
      const text = hostsFileFor(o.namespace, serviceVipsOf(loaded.model), loaded.model.settings.domainSuffix, entries);
      if (o.out !== undefined) writeFileSync(o.out, text, { mode: 0o644 });
      else io.write(text);
    });
}
