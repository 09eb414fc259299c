// `meshpilot validate <file or dir>...`: checks mesh config offline with the loader and policy
// compilers `serve` uses, plus the warnings of Istio's analyzers, and prints every diagnostic with
// file, line, column and field path.
//
// Exit codes: 0 no errors (warnings allowed unless --strict), 1 errors, 2 the command was misused.
import type { Command } from 'commander';
import { analyzeModel, loadConfig } from '../config/index.js';
import { policyForPort, portKind } from '../generate/index.js';
import { formatDiagnostic } from '../lib/index.js';
import {
  entryServicePort,
  hostMatchRank,
  pathInFile,
  positionOf,
  qualifyHost,
  workloadPortFor,
  type MeshModel,
  type ServicePort,
  type WorkloadEntry,
} from '../model/index.js';
import { compileInboundPolicy, compilePeerAuthentication, mtlsModeFor, UNUSABLE_JWKS } from '../policy/index.js';

/** What the validate command needs from outside: injected so tests run it in-process. */
export interface ValidateCommandDeps {
  /** Where the report goes (default: stdout). */
  readonly write?: (text: string) => void;
  /** Sets the process exit code (default: process.exitCode). */
  readonly setExitCode?: (code: number) => void;
}

/** Exit code of `validate` when the config has errors (or warnings, with --strict). */
export const EXIT_INVALID = 1;

interface ValidateOptions {
  namespace?: string;
  strict?: boolean;
  output: string;
}

/** One line of the report: a diagnostic of the loader, an analyzer or a compiler. */
export interface Finding {
  readonly severity: 'error' | 'warning' | 'info';
  readonly file?: string;
  readonly line?: number;
  readonly column?: number;
  readonly path: string;
  readonly message: string;
  /** The object a compiler diagnostic is about, e.g. `AuthorizationPolicy foo/bar`. */
  readonly object?: string;
}

// Offline, jwksUri keys are not fetched; the compilers get a valid stand-in so that they do not
// report "no keys fetched yet", which says nothing about the config.
const offlineJwks = (): string => UNUSABLE_JWKS;

/** Compiles every workload port as serve would and returns the compilers' diagnostics, each once. */
function compileFindings(model: MeshModel): Finding[] {
  const seen = new Map<string, Finding>();
  const add = (f: Finding) => seen.set(`${f.severity}\n${f.file}:${f.line}:${f.column}\n${f.path}\n${f.message}`, f);
  for (const w of model.workloads) {
    for (const d of compilePeerAuthentication(model, w).diagnostics) add(d);
    for (const svc of model.servicesOf(w))
      for (const sp of svc.ports)
        for (const d of compileInboundPolicy(model, w, workloadPortFor(sp, w), portKind(sp), offlineJwks).diagnostics) add(d);
  }
  return [...seen.values()];
}

/**
 * Warns about a DestinationRule whose TLS mode a STRICT server will refuse: DISABLE (plaintext),
 * SIMPLE or MUTUAL (no mesh certificate) toward a sidecar that requires mTLS. Istio lets such a
 * rule override auto mTLS, and its requests then fail; meshpilot does the same and says so here.
 */
function destinationRuleFindings(model: MeshModel): Finding[] {
  const out: Finding[] = [];
  const domain = model.settings.domainSuffix;
  const targets: { host: string; port: ServicePort; workloads: readonly WorkloadEntry[] }[] = [
    ...model.services.flatMap((s) =>
      s.ports.map((port) => ({ host: `${s.name}.${s.namespace}.svc.${domain}`, port, workloads: model.workloadsOf(s) })),
    ),
    ...model.serviceEntries.flatMap((e) =>
      e.hosts.flatMap((host) => e.ports.map((p) => ({ host, port: entryServicePort(p), workloads: model.workloadsOfEntry(e) }))),
    ),
  ];
  for (const rule of model.destinationRules) {
    const pattern = qualifyHost(rule.host, rule.namespace, domain);
    for (const t of targets) {
      if (hostMatchRank(pattern, t.host) === undefined) continue;
      const subsets = [undefined, ...rule.subsets];
      for (const subset of subsets) {
        const tls = policyForPort(rule.trafficPolicy, t.port.port, subset?.trafficPolicy).tls;
        if (!tls || tls.mode === 'ISTIO_MUTUAL') continue;
        const strict = t.workloads.filter(
          (w) => w.sidecar && mtlsModeFor(compilePeerAuthentication(model, w), workloadPortFor(t.port, w)) === 'STRICT',
        );
        if (strict.length === 0) continue;
        const path = subset
          ? `spec.subsets[${rule.subsets.indexOf(subset)}].trafficPolicy`
          : rule.trafficPolicy?.portLevelSettings[t.port.port]?.tls
            ? 'spec.trafficPolicy.portLevelSettings'
            : 'spec.trafficPolicy.tls.mode';
        const p = positionOf(rule.origin, path) ?? { file: rule.origin?.file ?? '', line: 0, column: 0 };
        out.push({
          severity: 'warning',
          file: p.file,
          line: p.line,
          column: p.column,
          path: pathInFile(rule.origin, path),
          message: `DestinationRule ${rule.namespace}/${rule.name}: TLS mode ${tls.mode} toward ${t.host}:${t.port.port}${subset ? ` (subset ${subset.name})` : ''}, whose workload ${strict.map((w) => `${w.namespace}/${w.name}`).join(', ')} requires mTLS (PeerAuthentication STRICT): requests fail, as in Istio; use ISTIO_MUTUAL or remove the tls setting`,
        });
      }
    }
  }
  return out;
}

function sortFindings(fs: Finding[]): Finding[] {
  return fs.sort(
    (a, b) =>
      (a.file ?? '').localeCompare(b.file ?? '') ||
      (a.line ?? 0) - (b.line ?? 0) ||
      (a.column ?? 0) - (b.column ?? 0) ||
      a.path.localeCompare(b.path),
  );
}

/** Validates config paths: the loader's diagnostics, then (if it loads) the analyzers' and the compilers'. */
export async function validateConfig(paths: readonly string[], opts: { namespace?: string } = {}): Promise<Finding[]> {
  const loaded = await loadConfig(paths, {
    warnImplicitNamespace: true,
    ...(opts.namespace !== undefined ? { defaultNamespace: opts.namespace } : {}),
  });
  const out: Finding[] = [...loaded.diagnostics];
  if (loaded.model) out.push(...analyzeModel(loaded.model), ...compileFindings(loaded.model), ...destinationRuleFindings(loaded.model));
  return sortFindings(out);
}

const OUTPUTS = ['text', 'json'];

/** Adds `meshpilot validate`. */
export function registerValidateCommand(program: Command, deps: ValidateCommandDeps = {}): Command {
  const write = deps.write ?? ((t: string) => void process.stdout.write(t));
  const setExitCode =
    deps.setExitCode ??
    ((c: number) => {
      process.exitCode = c;
    });
  return program
    .command('validate')
    .description('check mesh config offline, as serve would load and compile it; exit 1 on errors')
    .argument('<paths...>', 'config files or directories (YAML)')
    .option('--namespace <ns>', 'namespace of documents that name none (as kubectl apply -n)')
    .option('--strict', 'treat warnings as errors')
    .option('--output <format>', 'text or json', 'text')
    .action(async function (this: Command, paths: string[], o: ValidateOptions) {
      if (!OUTPUTS.includes(o.output))
        return this.error(`error: --output: '${o.output}' is not one of ${OUTPUTS.join(', ')}`, {
          exitCode: 2,
          code: 'meshpilot.validate.usage',
        });
      const findings = await validateConfig(paths, o.namespace !== undefined ? { namespace: o.namespace } : {});
      const count = (s: Finding['severity']) => findings.filter((f) => f.severity === s).length;
      const errors = count('error');
      const warnings = count('warning');
      const failed = errors > 0 || (o.strict === true && warnings > 0);
      if (o.output === 'json') {
        const diagnostics = findings.map((f) => ({
          severity: f.severity,
          file: f.file ?? null,
          line: f.line ?? null,
          column: f.column ?? null,
          path: f.path,
          message: f.message,
          ...(f.object ? { object: f.object } : {}),
        }));
        write(`${JSON.stringify({ valid: !failed, errors, warnings, diagnostics }, null, 2)}\n`);
      } else {
        let text = '';
        for (const f of findings) text += `${f.severity}: ${formatDiagnostic(f)}${f.object ? ` (${f.object})` : ''}\n`;
        const verdict = failed ? 'invalid' : 'valid';
        text += `${verdict}: ${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}${
          o.strict && warnings > 0 && errors === 0 ? ' (--strict: warnings are errors)' : ''
        }\n`;
        write(text);
      }
      setExitCode(failed ? EXIT_INVALID : 0);
    });
}
