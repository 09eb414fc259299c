// `meshpilot apply`, `get` and `delete`: config objects in etcd, one key per object, checked with
// the loader `serve` uses before anything is written (refused objects never reach the store).
//
// Exit codes: 0 done, 1 refused (every diagnostic printed with file or key, line and field), 2 misuse.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import {
  applyToStore,
  createEtcdObjectStore,
  deleteFromStore,
  parseKey,
  resolveConfigFiles,
  resolveKind,
  ACCEPTED_KINDS,
  CLUSTER_SCOPED,
  type ConfigDiagnostic,
  type ConfigObjectStore,
  type StoreWriteResult,
} from '../config/index.js';
import { formatDiagnostic } from '../lib/index.js';
import { addEtcdConnectionOptions, createEtcdClient, parseEtcdConnection, type EtcdConnectionFlags } from '../store/index.js';
import type { CliIo } from './testing.js';

/** Exit code when the store refused a write or the config does not check. */
export const EXIT_REFUSED = 1;

const stdio: CliIo = {
  write: (s) => process.stdout.write(s),
  warn: (s) => process.stderr.write(s),
  setExitCode: (c) => (process.exitCode = c),
};

/** Opens the etcd config store the --etcd-* flags name; throws with the flag to fix. */
export function openEtcdConfigStore(flags: EtcdConnectionFlags): ConfigObjectStore {
  const cfg = parseEtcdConnection(flags);
  if (!cfg.ok) throw new Error(cfg.error);
  if (!cfg.value) throw new Error('--etcd-endpoints: required (the etcd cluster that holds the mesh config)');
  return createEtcdObjectStore({
    client: createEtcdClient(cfg.value),
    prefix: cfg.value.prefix,
    endpoints: cfg.value.endpoints,
    ownsClient: true,
  });
}

function report(io: CliIo, diagnostics: readonly ConfigDiagnostic[]): void {
  for (const d of diagnostics) io.warn(`${d.severity}: ${formatDiagnostic(d)}\n`);
}

function printResult(io: CliIo, r: StoreWriteResult, dryRun: boolean): void {
  if (!r.ok) {
    report(io, r.diagnostics);
    io.warn(`refused: nothing was written\n`);
    io.setExitCode(EXIT_REFUSED);
    return;
  }
  report(
    io,
    r.diagnostics.filter((d) => d.severity !== 'info'),
  );
  const suffix = dryRun ? ' (dry run)' : '';
  for (const k of r.created) io.write(`${k} created${suffix}\n`);
  for (const k of r.updated) io.write(`${k} configured${suffix}\n`);
  for (const k of r.unchanged) io.write(`${k} unchanged\n`);
  for (const k of r.deleted) io.write(`${k} deleted${suffix}\n`);
  if (!dryRun) io.write(`revision ${r.revision}\n`);
}

async function withStore<T>(flags: EtcdConnectionFlags, f: (s: ConfigObjectStore) => Promise<T>): Promise<T> {
  const store = openEtcdConfigStore(flags);
  try {
    return await f(store);
  } finally {
    await store.close();
  }
}

function kindOrThrow(typed: string): string {
  const kind = resolveKind(typed);
  if (!kind) throw new Error(`KIND: unknown kind ${JSON.stringify(typed)}; one of ${Object.keys(ACCEPTED_KINDS).join(', ')}`);
  return kind;
}

interface ApplyFlags extends EtcdConnectionFlags {
  filename: string[];
  namespace?: string;
  dryRun?: boolean;
}
interface GetFlags extends EtcdConnectionFlags {
  namespace?: string;
  output: string;
}
interface DeleteFlags extends EtcdConnectionFlags {
  namespace: string;
  dryRun?: boolean;
}

/** Adds `meshpilot apply`, `get` and `delete`. */
export function registerConfigStoreCommands(program: Command, io: CliIo = stdio): void {
  addEtcdConnectionOptions(
    program
      .command('apply')
      .description('check config files with the loader of serve, then write their objects to etcd (one key per object) for every replica')
      .requiredOption('-f, --filename <paths...>', 'config files or directories (YAML)')
      .option('-n, --namespace <ns>', 'namespace of documents that name none (default: default)')
      .option('--dry-run', 'check against what the store holds; write nothing'),
  ).action(async (o: ApplyFlags) => {
    const { files, diagnostics } = await resolveConfigFiles(o.filename);
    if (diagnostics.length > 0) {
      report(io, diagnostics);
      io.setExitCode(EXIT_REFUSED);
      return;
    }
    const texts = await Promise.all(files.map(async (fileName) => ({ fileName, text: await readFile(fileName, 'utf8') })));
    const r = await withStore(o, (s) =>
      applyToStore(s, texts, { ...(o.namespace !== undefined ? { defaultNamespace: o.namespace } : {}), dryRun: o.dryRun === true }),
    );
    printResult(io, r, o.dryRun === true);
  });

  addEtcdConnectionOptions(
    program
      .command('get')
      .description('list config objects in etcd (all namespaces unless -n), or print one as YAML')
      .argument('<kind>', `one of ${Object.keys(ACCEPTED_KINDS).join(', ')} (any case, or plural)`)
      .argument('[name]', 'the object name')
      .option('-n, --namespace <ns>', 'only this namespace')
      .option('-o, --output <format>', 'table, yaml or name', 'table'),
  ).action(async (kindArg: string, name: string | undefined, o: GetFlags) => {
    const kind = kindOrThrow(kindArg);
    if (!['table', 'yaml', 'name'].includes(o.output))
      throw new Error(`--output: expected table, yaml or name, got ${JSON.stringify(o.output)}`);
    const l = await withStore(o, (s) => s.list());
    const rows = l.objects
      .map((x) => ({ ...x, id: parseKey(x.key) }))
      .filter(
        (x) =>
          x.id?.kind === kind &&
          (o.namespace === undefined || x.id.namespace === o.namespace) &&
          (name === undefined || x.id.name === name),
      )
      .sort((a, b) => a.key.localeCompare(b.key));
    if (rows.length === 0) {
      io.warn(`no ${kind}${name ? ` named ${name}` : ''}${o.namespace ? ` in namespace ${o.namespace}` : ''} in the config store\n`);
      if (name !== undefined) io.setExitCode(EXIT_REFUSED);
      return;
    }
    // One object asked for by name prints as YAML, as `kubectl get -o yaml` does.
    const format = o.output === 'table' && name !== undefined ? 'yaml' : o.output;
    if (format === 'name') for (const r of rows) io.write(`${r.key}\n`);
    else if (format === 'yaml') io.write(rows.map((r) => r.value.replace(/\n*$/, '\n')).join('---\n'));
    else {
      const table = rows.map((r) => [
        r.id!.namespace === CLUSTER_SCOPED ? '' : r.id!.namespace,
        r.id!.name,
        String(r.modRevision),
        /^# meshpilot apply: (.*)$/m.exec(r.value)?.[1] ?? '',
      ]);
      const head = ['NAMESPACE', 'NAME', 'REVISION', 'APPLIED FROM'];
      const widths = head.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
      for (const line of [head, ...table])
        io.write(
          `${line
            .map((c, i) => c.padEnd(widths[i]!))
            .join('  ')
            .trimEnd()}\n`,
        );
    }
  });

  addEtcdConnectionOptions(
    program
      .command('delete')
      .description('delete a config object from etcd, if the config still checks without it')
      .argument('<kind>', `one of ${Object.keys(ACCEPTED_KINDS).join(', ')}`)
      .argument('<name>', 'the object name')
      .option('-n, --namespace <ns>', 'the object namespace', 'default')
      .option('--dry-run', 'check only; delete nothing'),
  ).action(async (kindArg: string, name: string, o: DeleteFlags) => {
    const kind = kindOrThrow(kindArg);
    const namespace = kind === 'MeshConfig' ? CLUSTER_SCOPED : o.namespace;
    const r = await withStore(o, (s) => deleteFromStore(s, [{ kind, namespace, name }], { dryRun: o.dryRun === true }));
    printResult(io, r, o.dryRun === true);
  });
}
