// Checks across objects and files (duplicates, references, selection), then builds the model.
import { reservedServiceAccount } from '../identity/index.js';
import {
  createMeshModel,
  createSelectorIndex,
  DEFAULT_MESH_SETTINGS,
  meshSettings,
  pathInFile,
  positionOf,
  type Labels,
  type MeshModel,
  type ObjectMeta,
  type Service,
  type ServiceEntry,
  type SourceRef,
} from '../model/index.js';
import { checkNetworking } from './networking-checks.js';
import { loopbackPortConflicts } from './loopback-ports.js';
import { assignServiceVips } from './service-vips.js';
import { hasErrors, type ConfigDiagnostic } from './diagnostics.js';
import { configLimits, overLimit, type ConfigLimits } from './limits.js';
import { parseFileText, type ParsedObject, type ParseOptions } from './parse-document.js';
import { withConfigLimits } from './yaml-reader.js';

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
  return { severity, file: p.file, line: p.line, column: p.column, path: pathInFile(origin, path), message };
}

const where = (o: SourceRef): string => `${o.file}:${o.line}`;

// A line starting with `---` and a space or line end always starts a document: YAML forbids it inside
// any scalar (YAML 1.2 c-forbidden), so counting these is a cheap, exact bound checked before parsing.
const DOCUMENT_START = /^---(?=[ \t\r\n]|$)/gm;

// Refuses a file over the size or document limit before it is parsed; returns true when within.
function withinFileLimits(input: ConfigText, limits: ConfigLimits, diagnostics: ConfigDiagnostic[]): boolean {
  const bytes = Buffer.byteLength(input.text, 'utf8');
  if (bytes > limits.maxFileBytes) {
    diagnostics.push({
      severity: 'error',
      file: input.fileName,
      line: 1,
      column: 1,
      path: '',
      message: overLimit('maxFileBytes', limits, `${bytes} bytes`),
    });
    return false;
  }
  let documents = 1;
  for (const m of input.text.matchAll(DOCUMENT_START)) {
    // The first document may start with its own `---`.
    if (m.index === 0) continue;
    if (++documents > limits.maxDocumentsPerFile) {
      const line = input.text.slice(0, m.index).split('\n').length;
      diagnostics.push({
        severity: 'error',
        file: input.fileName,
        line,
        column: 1,
        path: '',
        message: overLimit('maxDocumentsPerFile', limits, `more than ${limits.maxDocumentsPerFile} documents`),
      });
      return false;
    }
  }
  return true;
}

/**
 * Parses several files as one config (names are unique across files) and builds the model if nothing is wrong;
 * a file over one of the limits (defaults in CONFIG_LIMITS) is refused with the limit named.
 */
export function parseConfigFiles(
  inputs: readonly ConfigText[],
  extra: readonly ConfigDiagnostic[] = [],
  opts: ParseOptions & { readonly limits?: Partial<ConfigLimits> } = {},
): LoadResult {
  return buildParsed(inputs, parseTexts(inputs, extra, opts));
}

/** What parsing files yields before any check across objects: plain data, so a worker thread can make it. */
export interface ParsedFiles {
  readonly objects: ParsedObject[];
  readonly diagnostics: ConfigDiagnostic[];
  readonly syntaxErrors: boolean;
}

/** Parses files one by one (the costly part of loading), each refused whole when over a limit. */
export function parseTexts(
  inputs: readonly ConfigText[],
  extra: readonly ConfigDiagnostic[] = [],
  opts: ParseOptions & { readonly limits?: Partial<ConfigLimits> } = {},
): ParsedFiles {
  const limits = configLimits(opts.limits ?? {});
  const diagnostics: ConfigDiagnostic[] = [...extra];
  const objects: ParsedObject[] = [];
  let syntaxErrors = false;
  for (const input of inputs) {
    if (!withinFileLimits(input, limits, diagnostics)) {
      syntaxErrors = true;
      continue;
    }
    const parsed = withConfigLimits(limits, () => parseFileText(input.text, input.fileName, diagnostics, opts));
    // A loop, not push(...objects): spreading 140,000 objects as arguments overflows the stack.
    for (const o of parsed.objects) objects.push(o);
    syntaxErrors ||= parsed.syntaxErrors;
  }
  return { objects, diagnostics, syntaxErrors };
}

/** Checks parsed objects across files (duplicates, references, selection, addresses) and builds the model if nothing is wrong. */
export function buildParsed(inputs: readonly { readonly fileName: string }[], parsed: ParsedFiles): LoadResult {
  const { objects, diagnostics, syntaxErrors } = parsed;
  const kept = checkAddresses(
    checkNetworking(resolveTargets(crossCheck(objects, diagnostics, !syntaxErrors), diagnostics), diagnostics),
    diagnostics,
  );
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
    sidecars: byKind('Sidecar'),
    serviceEntries: byKind('ServiceEntry'),
    destinationRules: byKind('DestinationRule'),
  });
  return { model, diagnostics, files };
}

/** Parses one file's text: for tests and tools. */
export function parseConfigText(
  text: string,
  fileName: string,
  opts: ParseOptions & { readonly limits?: Partial<ConfigLimits> } = {},
): LoadResult {
  return parseConfigFiles([{ fileName, text }], [], opts);
}

const sameLabels = (a: Labels, b: Labels): boolean =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

// A policy's targetRef(s) naming Services select the workloads of those Services: the policy gets
// the Service's selector (a policy and its Services share a namespace, so they select the same
// workloads). A policy whose targets select nothing applies to nothing, as in Istio.
function resolveTargets(objects: readonly ParsedObject[], diagnostics: ConfigDiagnostic[]): ParsedObject[] {
  const services = new Map(objects.flatMap((o) => (o.kind === 'Service' ? [[`${o.value.namespace}/${o.value.name}`, o.value]] : [])));
  const mc = objects.find((o) => o.kind === 'MeshConfig');
  const rootNamespace = meshSettings(mc?.kind === 'MeshConfig' ? mc.value : {}).rootNamespace;
  const out: ParsedObject[] = [];
  for (const o of objects) {
    // No target left (an empty list, or every entry was refused and reported): nothing to resolve.
    if ((o.kind !== 'AuthorizationPolicy' && o.kind !== 'RequestAuthentication') || !o.targets?.length) {
      out.push(o);
      continue;
    }
    const p = o.value;
    const origin = p.origin as SourceRef;
    if (p.namespace === rootNamespace) {
      // In the root namespace a selector reaches every namespace; a Service's selector would too.
      diagnostics.push(
        at(origin, 'spec', 'error', `targetRef(s) in the root namespace ${rootNamespace} are not supported by meshpilot: use a selector`),
      );
      continue;
    }
    const selectors: Labels[] = [];
    for (const t of o.targets) {
      const svc = services.get(`${p.namespace}/${t.name}`);
      if (svc && Object.keys(svc.selector).length > 0) selectors.push(svc.selector);
      else
        diagnostics.push(
          at(origin, t.path, 'warning', `no Service ${p.namespace}/${t.name} with a selector: this target selects no workload`),
        );
    }
    if (selectors.length === 0) {
      diagnostics.push(at(origin, 'spec', 'warning', `${o.kind} ${p.namespace}/${p.name} selects no workload: it has no effect`));
      continue;
    }
    if (!selectors.every((sel) => sameLabels(sel, selectors[0]!))) {
      diagnostics.push(
        at(
          origin,
          'spec.targetRefs',
          'error',
          'targetRefs naming Services with different selectors are not supported by meshpilot: write one policy per Service',
        ),
      );
      continue;
    }
    out.push({ ...o, value: { ...p, selector: selectors[0]! } } as ParsedObject);
  }
  return out;
}

// Gives every Service its VIP (clusterIP, else from serviceCidr) and, in loopback mode, refuses
// service ports whose app port is the service port on a sidecar workload.
function checkAddresses(objects: readonly ParsedObject[], diagnostics: ConfigDiagnostic[]): ParsedObject[] {
  const mesh = objects.find((o): o is Extract<ParsedObject, { kind: 'MeshConfig' }> => o.kind === 'MeshConfig')?.value;
  const settings = meshSettings(mesh);
  const services = objects.flatMap((o) => (o.kind === 'Service' ? [o.value] : []));
  const workloads = objects.flatMap((o) => (o.kind === 'WorkloadEntry' ? [o.value] : []));
  // A ServiceEntry without addresses gets a VIP from the same range (Istio's auto-allocation), so
  // that capture mode reaches its hosts by name: it takes part as a service named `serviceentry/<name>`.
  const entries = objects.flatMap((o) => (o.kind === 'ServiceEntry' ? [o.value] : []));
  const asService = new Map(
    entries
      .filter((e) => e.addresses.length === 0)
      .map((e): [Service, ServiceEntry] => [
        { namespace: e.namespace, name: `serviceentry/${e.name}`, labels: {}, ports: [], selector: {}, origin: e.origin },
        e,
      ]),
  );
  const held = [
    ...workloads,
    ...entries.flatMap((e) => e.addresses.map((address) => ({ address, namespace: e.namespace, name: `${e.name} (ServiceEntry)` }))),
  ];
  const pseudo = [...asService.keys()];
  const assigned = assignServiceVips([...services, ...pseudo], held, settings.serviceCidr, mesh?.origin);
  const entryVip = new Map<ServiceEntry, string>();
  pseudo.forEach((p, i) => {
    const vip = assigned.services[services.length + i]?.vip;
    if (vip) entryVip.set(asService.get(p)!, vip);
  });
  for (const p of assigned.problems) diagnostics.push(at(p.origin ?? UNKNOWN_ORIGIN, p.path, 'error', p.message));
  if (settings.captureMode === 'loopback') {
    const byLabel = createSelectorIndex(
      workloads,
      (w) => w.namespace,
      (w) => w.labels,
    );
    const selected = (s: Service) => (Object.keys(s.selector).length === 0 ? [] : byLabel.select(s.namespace, s.selector));
    for (const c of loopbackPortConflicts(services, selected)) diagnostics.push(at(c.origin ?? UNKNOWN_ORIGIN, c.path, 'error', c.message));
  }
  const withVip = new Map(services.map((s, i) => [s, assigned.services[i]]));
  return objects.map((o): ParsedObject => {
    if (o.kind === 'Service') return { kind: 'Service', value: withVip.get(o.value) ?? o.value };
    if (o.kind !== 'ServiceEntry') return o;
    const vip = o.value.addresses[0] ?? entryVip.get(o.value);
    return vip ? { kind: 'ServiceEntry', value: { ...o.value, vip } } : o;
  });
}

const UNKNOWN_ORIGIN: SourceRef = { file: '(unknown)', line: 0, column: 0 };

// Returns the objects without duplicates; reference checks are skipped when a document could not
// be parsed, since the object it referred to may be in that document.
function crossCheck(objects: readonly ParsedObject[], diagnostics: ConfigDiagnostic[], checkReferences: boolean): ParsedObject[] {
  const seen = new Map<string, SourceRef>();
  const kept: ParsedObject[] = [];
  let meshConfig: SourceRef | undefined;
  let rootNamespace = DEFAULT_MESH_SETTINGS.rootNamespace;
  for (const o of objects) {
    const origin = o.value.origin as SourceRef;
    if (o.kind === 'MeshConfig') {
      if (meshConfig) diagnostics.push(at(origin, 'kind', 'error', `at most one MeshConfig is allowed (first at ${where(meshConfig)})`));
      else {
        meshConfig = origin;
        rootNamespace = o.value.rootNamespace;
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
  for (const w of workloads) {
    const reserved = reservedServiceAccount(w.serviceAccount.namespace, w.serviceAccount.name, { rootNamespace });
    if (reserved) diagnostics.push(at(w.origin as SourceRef, 'spec.serviceAccount', 'error', `${reserved}: a workload must not run as it`));
  }
  if (checkReferences) {
    const byLabel = createSelectorIndex(
      workloads,
      (w) => w.namespace,
      (w) => w.labels,
    );
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
      if (byLabel.select(s.namespace, s.selector).length === 0)
        diagnostics.push(
          // A warning, not an error: a Service next to the Deployment Istio users write it for has no
          // WorkloadEntry yet, and a Service without endpoints endangers nothing (Kubernetes allows it too).
          at(
            s.origin as SourceRef,
            'spec.selector',
            'warning',
            `selects no workloads: no WorkloadEntry in ${s.namespace} has these labels (meshpilot does not read Deployments or Pods)`,
          ),
        );
    }
  }

  // A CUSTOM policy names an external authorizer of the MeshConfig; naming none would deny
  // everything it selects (the compiler fails closed), so the config is refused and says why.
  const mesh = kept.find((o): o is Extract<ParsedObject, { kind: 'MeshConfig' }> => o.kind === 'MeshConfig')?.value;
  const providers = new Set((mesh?.extensionProviders ?? []).map((p) => p.name));
  for (const o of kept) {
    if (o.kind !== 'AuthorizationPolicy' || o.value.action !== 'CUSTOM' || o.value.provider === undefined) continue;
    if (!providers.has(o.value.provider))
      diagnostics.push(
        at(
          o.value.origin as SourceRef,
          'spec.provider.name',
          'error',
          `unknown provider '${o.value.provider}': ${providers.size > 0 ? `the MeshConfig's extensionProviders are ${[...providers].join(', ')}` : 'the MeshConfig has no extensionProviders (envoyExtAuthzHttp or envoyExtAuthzGrpc)'}`,
        ),
      );
  }

  // Istio: one Sidecar without selector per namespace; with more, which one applies is undefined.
  const defaults = new Map<string, SourceRef>();
  for (const o of kept) {
    if (o.kind !== 'Sidecar' || o.value.selector) continue;
    const first = defaults.get(o.value.namespace);
    if (first)
      diagnostics.push(
        at(
          o.value.origin as SourceRef,
          'spec',
          'warning',
          `more than one Sidecar without workloadSelector in ${o.value.namespace} (also at ${where(first)}): meshpilot applies the first by name`,
        ),
      );
    else defaults.set(o.value.namespace, o.value.origin as SourceRef);
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
