// Checks across objects and files (duplicates, references, selection), then builds the model.
import {
  createMeshModel,
  meshSettings,
  positionOf,
  selectorMatches,
  type MeshModel,
  type ObjectMeta,
  type Service,
  type SourceRef,
} from '../model/index.js';
import { loopbackPortConflicts } from './loopback-ports.js';
import { assignServiceVips } from './service-vips.js';
import { hasErrors, type ConfigDiagnostic } from './diagnostics.js';
import { parseFileText, type ParsedObject } from './parse-document.js';

/** The outcome of loading config: a model only when there is no error, and every diagnostic found. */
export interface LoadResult {
  readonly model?: MeshModel;
  readonly diagnostics: readonly ConfigDiagnostic[];
  /** The files read, in order. */
  readonly files: readonly string[];
}

/** One config file's name and content. */
export interface ConfigText {
  readonly fileName: string;
  readonly text: string;
}

function at(origin: SourceRef, path: string, severity: ConfigDiagnostic['severity'], message: string): ConfigDiagnostic {
  const p = positionOf(origin, path) ?? { file: origin.file, line: origin.line, column: origin.column };
  return { severity, file: p.file, line: p.line, column: p.column, path, message };
}

const where = (o: SourceRef): string => `${o.file}:${o.line}`;

/** Parses several files as one config (names are unique across files) and builds the model if nothing is wrong. */
export function parseConfigFiles(inputs: readonly ConfigText[], extra: readonly ConfigDiagnostic[] = []): LoadResult {
  const diagnostics: ConfigDiagnostic[] = [...extra];
  const objects: ParsedObject[] = [];
  let syntaxErrors = false;
  for (const input of inputs) {
    const parsed = parseFileText(input.text, input.fileName, diagnostics);
    objects.push(...parsed.objects);
    syntaxErrors ||= parsed.syntaxErrors;
  }
  const crossChecked = crossCheck(objects, diagnostics, !syntaxErrors);
  const kept = checkAddresses(crossChecked, diagnostics);
  const order = new Map(inputs.map((f, i) => [f.fileName, i]));
  diagnostics.sort(
    (a, b) => (order.get(a.file) ?? -1) - (order.get(b.file) ?? -1) || (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0),
  );
  const files = inputs.map((f) => f.fileName);
  if (hasErrors(diagnostics)) return { diagnostics, files };
  const byKind = <K extends ParsedObject['kind']>(k: K) =>
    kept
      .filter((o): o is Extract<ParsedObject, { kind: K }> => o.kind === k)
      .map((o) => o.value as Extract<ParsedObject, { kind: K }>['value']);
  const model = createMeshModel({
    settings: byKind('MeshConfig')[0],
    serviceAccounts: byKind('ServiceAccount'),
    services: byKind('Service'),
    workloads: byKind('WorkloadEntry'),
    peerAuthentications: byKind('PeerAuthentication'),
    authorizationPolicies: byKind('AuthorizationPolicy'),
    requestAuthentications: byKind('RequestAuthentication'),
  });
  return { model, diagnostics, files };
}

/** Parses one file's text: for tests and tools. */
export function parseConfigText(text: string, fileName: string): LoadResult {
  return parseConfigFiles([{ fileName, text }]);
}

// Gives every Service its VIP (clusterIP, else from serviceCidr) and, in loopback mode, refuses
// service ports whose app port is the service port on a sidecar workload.
function checkAddresses(objects: readonly ParsedObject[], diagnostics: ConfigDiagnostic[]): ParsedObject[] {
  const mesh = objects.find((o): o is Extract<ParsedObject, { kind: 'MeshConfig' }> => o.kind === 'MeshConfig')?.value;
  const settings = meshSettings(mesh);
  const services = objects.flatMap((o) => (o.kind === 'Service' ? [o.value] : []));
  const workloads = objects.flatMap((o) => (o.kind === 'WorkloadEntry' ? [o.value] : []));
  const assigned = assignServiceVips(services, workloads, settings.serviceCidr, mesh?.origin);
  for (const p of assigned.problems) diagnostics.push(at(p.origin ?? UNKNOWN_ORIGIN, p.path, 'error', p.message));
  if (settings.captureMode === 'loopback') {
    const selected = (s: Service) => workloads.filter((w) => w.namespace === s.namespace && selectorMatches(s.selector, w.labels));
    for (const c of loopbackPortConflicts(services, selected)) diagnostics.push(at(c.origin ?? UNKNOWN_ORIGIN, c.path, 'error', c.message));
  }
  const withVip = new Map(services.map((s, i) => [s, assigned.services[i]]));
  return objects.map((o): ParsedObject => (o.kind === 'Service' ? { kind: 'Service', value: withVip.get(o.value) ?? o.value } : o));
}

const UNKNOWN_ORIGIN: SourceRef = { file: '(unknown)', line: 0, column: 0 };

// Returns the objects without duplicates; reference checks are skipped when a document could not
// be parsed, since the object it referred to may be in that document.
function crossCheck(objects: readonly ParsedObject[], diagnostics: ConfigDiagnostic[], checkReferences: boolean): ParsedObject[] {
  const seen = new Map<string, SourceRef>();
  const kept: ParsedObject[] = [];
  let meshConfig: SourceRef | undefined;
  for (const o of objects) {
    const origin = o.value.origin as SourceRef;
    if (o.kind === 'MeshConfig') {
      if (meshConfig) diagnostics.push(at(origin, 'kind', 'error', `at most one MeshConfig is allowed (first at ${where(meshConfig)})`));
      else {
        meshConfig = origin;
        kept.push(o);
      }
      continue;
    }
    const v = o.value as ObjectMeta;
    const key = `${o.kind}/${v.namespace}/${v.name}`;
    const first = seen.get(key);
    if (first) {
      diagnostics.push(at(origin, 'metadata.name', 'error', `duplicate ${o.kind} ${v.namespace}/${v.name} (first at ${where(first)})`));
      continue;
    }
    seen.set(key, origin);
    kept.push(o);
  }

  const workloads = kept.flatMap((o) => (o.kind === 'WorkloadEntry' ? [o.value] : []));
  if (checkReferences) {
    for (const w of workloads) {
      const sa = w.serviceAccount;
      if (sa.name !== '' && !seen.has(`ServiceAccount/${sa.namespace}/${sa.name}`))
        diagnostics.push(
          at(
            w.origin as SourceRef,
            'spec.serviceAccount',
            'error',
            `unknown ServiceAccount ${sa.namespace}/${sa.name}: declare a v1 ServiceAccount in ${sa.namespace}`,
          ),
        );
    }
    for (const o of kept) {
      if (o.kind !== 'Service' || Object.keys(o.value.selector).length === 0) continue;
      const s = o.value;
      if (!workloads.some((w) => w.namespace === s.namespace && selectorMatches(s.selector, w.labels)))
        diagnostics.push(
          at(s.origin as SourceRef, 'spec.selector', 'error', `selects no workloads: no WorkloadEntry in ${s.namespace} has these labels`),
        );
    }
  }

  const byAddress = new Map<string, SourceRef>();
  for (const w of workloads) {
    if (w.address === '') continue;
    const first = byAddress.get(w.address);
    if (first)
      diagnostics.push(at(w.origin as SourceRef, 'spec.address', 'warning', `address ${w.address} is also used at ${where(first)}`));
    else byAddress.set(w.address, w.origin as SourceRef);
  }
  const wide = new Map<string, SourceRef>();
  for (const o of kept) {
    if (o.kind !== 'PeerAuthentication' || o.value.selector) continue;
    const first = wide.get(o.value.namespace);
    // Istio applies only the oldest of several selector-less PeerAuthentications; a file has no age.
    if (first)
      diagnostics.push(
        at(
          o.value.origin as SourceRef,
          'spec',
          'warning',
          `more than one PeerAuthentication without selector in ${o.value.namespace} (also at ${where(first)}): which one applies is undefined`,
        ),
      );
    else wide.set(o.value.namespace, o.value.origin as SourceRef);
  }
  return kept;
}
