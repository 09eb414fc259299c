// Turns one file's text into parsed objects: YAML syntax, the Kubernetes envelope, then the kind's spec.
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node } from 'yaml';
import type {
  AuthorizationPolicy,
  DestinationRule,
  Labels,
  MeshSettings,
  PeerAuthentication,
  RequestAuthentication,
  Service,
  ServiceAccount,
  Sidecar,
  ServiceEntry,
  SourcePosition,
  SourceRef,
  WorkloadEntry,
} from '../model/index.js';
import { readLabels } from './common.js';
import type { ConfigDiagnostic } from './diagnostics.js';
import { parseMeshConfig } from './mesh-config.js';
import { checkDns1035Label, checkDns1123Label, checkDns1123Subdomain, checkLabelKey } from './names.js';
import { parseAuthorizationPolicy, parsePeerAuthentication, parseRequestAuthentication, type ServiceTarget } from './policies.js';
import { parseSidecar } from './sidecar.js';
import { parseService, parseServiceAccount, parseWorkloadEntry } from './workloads.js';
import { parseServiceEntry } from './service-entry.js';
import { parseDestinationRule } from './destination-rule.js';
import { DocReader, type Field } from './yaml-reader.js';

/** The Kubernetes envelope of one object, read before its spec. */
export interface ObjectHeader {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Labels;
  /** metadata.annotations (only string values; bad ones are reported). */
  readonly annotations: Labels;
  readonly origin: SourceRef;
  /** Position of the document (for problems with missing top-level fields). */
  readonly at: SourcePosition;
  /** Every top-level field present. */
  readonly top: Readonly<Record<string, Field>>;
}

/** One object parsed from a document, tagged with its kind. */
export type ParsedObject =
  | { readonly kind: 'ServiceAccount'; readonly value: ServiceAccount }
  | { readonly kind: 'Service'; readonly value: Service }
  | { readonly kind: 'WorkloadEntry'; readonly value: WorkloadEntry }
  | { readonly kind: 'PeerAuthentication'; readonly value: PeerAuthentication }
  | { readonly kind: 'AuthorizationPolicy'; readonly value: AuthorizationPolicy; readonly targets?: readonly ServiceTarget[] }
  | { readonly kind: 'RequestAuthentication'; readonly value: RequestAuthentication; readonly targets?: readonly ServiceTarget[] }
  | { readonly kind: 'Sidecar'; readonly value: Sidecar }
  | { readonly kind: 'ServiceEntry'; readonly value: ServiceEntry }
  | { readonly kind: 'DestinationRule'; readonly value: DestinationRule }
  | { readonly kind: 'MeshConfig'; readonly value: MeshSettings & { readonly origin: SourceRef }; readonly name: string };

type Kind = ParsedObject['kind'];

interface KindSpec {
  readonly apiVersions: readonly string[];
  readonly hasSpec: boolean;
  readonly namespaced: boolean;
  readonly checkName: (s: string) => string | undefined;
  readonly parse: (r: DocReader, h: ObjectHeader, spec: Field | undefined) => ParsedObject;
}

// v1alpha3 is still served by Istio for WorkloadEntry, and older Istio tooling writes it.
const ISTIO_NETWORKING = ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'];
const ISTIO_SECURITY = ['security.istio.io/v1', 'security.istio.io/v1beta1'];

const KINDS: Readonly<Record<Kind, KindSpec>> = {
  ServiceAccount: {
    apiVersions: ['v1'],
    hasSpec: false,
    namespaced: true,
    checkName: checkDns1123Subdomain,
    parse: (r, h) => ({ kind: 'ServiceAccount', value: parseServiceAccount(r, h) }),
  },
  Service: {
    apiVersions: ['v1'],
    hasSpec: true,
    namespaced: true,
    // Service names become DNS labels (<svc>.<ns>.svc.<domain>), so Kubernetes requires DNS-1035.
    checkName: checkDns1035Label,
    parse: (r, h, spec) => ({ kind: 'Service', value: parseService(r, h, spec) }),
  },
  WorkloadEntry: {
    apiVersions: ISTIO_NETWORKING,
    hasSpec: true,
    namespaced: true,
    checkName: checkDns1123Subdomain,
    parse: (r, h, spec) => ({ kind: 'WorkloadEntry', value: parseWorkloadEntry(r, h, spec) }),
  },
  PeerAuthentication: {
    apiVersions: ISTIO_SECURITY,
    hasSpec: true,
    namespaced: true,
    checkName: checkDns1123Subdomain,
    parse: (r, h, spec) => ({ kind: 'PeerAuthentication', value: parsePeerAuthentication(r, h, spec) }),
  },
  AuthorizationPolicy: {
    apiVersions: ISTIO_SECURITY,
    hasSpec: true,
    namespaced: true,
    checkName: checkDns1123Subdomain,
    parse: (r, h, spec) => ({ kind: 'AuthorizationPolicy', ...parseAuthorizationPolicy(r, h, spec) }),
  },
  RequestAuthentication: {
    apiVersions: ISTIO_SECURITY,
    hasSpec: true,
    namespaced: true,
    checkName: checkDns1123Subdomain,
    parse: (r, h, spec) => ({ kind: 'RequestAuthentication', ...parseRequestAuthentication(r, h, spec) }),
  },
  ServiceEntry: {
    apiVersions: ISTIO_NETWORKING,
    hasSpec: true,
    namespaced: true,
    checkName: checkDns1123Subdomain,
    parse: (r, h, spec) => ({ kind: 'ServiceEntry', value: parseServiceEntry(r, h, spec) }),
  },
  DestinationRule: {
    apiVersions: ISTIO_NETWORKING,
    hasSpec: true,
    namespaced: true,
    checkName: checkDns1123Subdomain,
    parse: (r, h, spec) => ({ kind: 'DestinationRule', value: parseDestinationRule(r, h, spec) }),
  },
  Sidecar: {
    apiVersions: ISTIO_NETWORKING,
    hasSpec: true,
    namespaced: true,
    checkName: checkDns1123Subdomain,
    parse: (r, h, spec) => ({ kind: 'Sidecar', value: parseSidecar(r, h, spec) }),
  },
  MeshConfig: {
    apiVersions: ['meshpilot.io/v1alpha1'],
    hasSpec: true,
    namespaced: false,
    checkName: checkDns1123Subdomain,
    parse: (r, h, spec) => ({ kind: 'MeshConfig', value: { ...parseMeshConfig(r, h, spec), origin: h.origin }, name: h.name }),
  },
};

/** The kinds the loader accepts, with their apiVersions. */
export const ACCEPTED_KINDS: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
  Object.entries(KINDS).map(([k, v]) => [k, v.apiVersions]),
);

const isKind = (k: string): k is Kind => Object.hasOwn(KINDS, k);

/** Options of the parser that concern every document. */
export interface ParseOptions {
  /** The namespace of documents that name none, like `kubectl apply -n`; default `default`. */
  readonly defaultNamespace?: string;
  /** Warn about each namespaced document that names no namespace (as Istio's analyzers do). */
  readonly warnImplicitNamespace?: boolean;
}

/** One document, or one item of a `kind: List`, still to be read; `flush` hands an item's diagnostics on. */
interface Root {
  readonly r: DocReader;
  readonly field: Field;
  readonly flush?: () => void;
  /** `items[i]` for an item of a List. */
  readonly prefix?: string;
}

type ItemReader = (node: Node, prefix: string) => Root;

/** Parses every document of one file; `syntaxErrors` tells whether any document could not be read as YAML. */
export function parseFileText(
  text: string,
  file: string,
  diagnostics: ConfigDiagnostic[],
  opts: ParseOptions = {},
): { objects: ParsedObject[]; syntaxErrors: boolean } {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const objects: ParsedObject[] = [];
  let syntaxErrors = false;
  for (const doc of docs as Iterable<Document.Parsed>) {
    const r = new DocReader(file, lc, doc, diagnostics);
    if (doc.errors.length > 0) {
      syntaxErrors = true;
      for (const e of doc.errors) r.error(r.posOf(e.pos[0]), '', `YAML syntax error: ${e.message.split('\n')[0]}`);
      continue;
    }
    for (const w of doc.warnings) r.warn(r.posOf(w.pos[0]), '', `YAML: ${w.message.split('\n')[0]}`);
    const root = r.root();
    if (!root) continue;
    // Each item of a List gets its own reader: its field paths and positions are its own, as if it
    // were a document, and its diagnostics are moved under `items[i]`.
    const readItem: ItemReader = (node, prefix) => {
      const own: ConfigDiagnostic[] = [];
      return {
        r: new DocReader(file, lc, doc, own),
        field: { node, path: '', at: r.posOf(node.range?.[0] ?? 0) },
        prefix,
        flush: () => diagnostics.push(...own.map((d) => ({ ...d, path: d.path === '' ? prefix : `${prefix}.${d.path}` }))),
      };
    };
    parseRoot({ r, field: root }, readItem, opts, objects);
  }
  return { objects, syntaxErrors };
}

// ---- kinds meshpilot does not act on --------------------------------------------------------

/** Why a kind is skipped, for kinds users often bring along from Istio or Kubernetes. */
const SKIP_HINTS: Readonly<Record<string, string>> = {
  Deployment: 'meshpilot takes workloads from WorkloadEntry objects (one per instance)',
  StatefulSet: 'meshpilot takes workloads from WorkloadEntry objects (one per instance)',
  DaemonSet: 'meshpilot takes workloads from WorkloadEntry objects (one per instance)',
  Pod: 'meshpilot takes workloads from WorkloadEntry objects (one per instance)',
  Namespace: 'namespaces exist by being named in metadata.namespace',
  VirtualService: 'meshpilot does no traffic routing',
  Gateway: 'meshpilot runs no gateways',
  WorkloadGroup: 'declare each instance as a WorkloadEntry',
  EnvoyFilter: 'meshpilot applies no EnvoyFilter patches: a filter it adds (an authorizer, say) is not there',
  WasmPlugin: 'meshpilot loads no Wasm plugins: a check it does (authentication, say) is not there',
  NetworkPolicy: 'meshpilot does not enforce Kubernetes NetworkPolicy; use AuthorizationPolicy',
};

// A security kind is never skipped: a policy that is silently left out could open access (fail
// closed). The old authentication and RBAC APIs were removed from Istio; their objects are refused too.
const SECURITY_GROUPS: Readonly<Record<string, string>> = {
  'security.istio.io/': '',
  'authentication.istio.io/':
    'the authentication.istio.io API was removed from Istio (1.6): use PeerAuthentication and RequestAuthentication',
  'rbac.istio.io/': 'the rbac.istio.io API was removed from Istio (1.6): use AuthorizationPolicy',
};

/** Reads a string at `key` of a mapping without reporting anything: for classifying a document. */
function peek(node: Node, key: string): { value: string; node: Node } | undefined {
  if (!isMap(node)) return undefined;
  const v = node.get(key, true) as Node | undefined;
  return v && isScalar(v) && typeof v.value === 'string' ? { value: v.value, node: v } : undefined;
}

function peekName(node: Node): string {
  const meta = isMap(node) ? (node.get('metadata', true) as Node | undefined) : undefined;
  const name = meta ? peek(meta, 'name')?.value : undefined;
  const ns = meta ? peek(meta, 'namespace')?.value : undefined;
  return name === undefined ? '(no name)' : ns === undefined ? name : `${ns}/${name}`;
}

function parseRoot(root: Root, readItem: ItemReader, opts: ParseOptions, out: ParsedObject[]): void {
  const { r, field } = root;
  if (!isMap(field.node)) {
    r.map(field, []); // reports "must be a mapping"
    return;
  }
  const kind = peek(field.node, 'kind');
  const apiVersion = peek(field.node, 'apiVersion');
  const items = field.node.get('items', true) as Node | undefined;
  // `kubectl get -o yaml` of several objects: `v1 List` (or `<Kind>List`) with the objects as items.
  if (kind && (kind.value === 'List' || kind.value.endsWith('List')) && items && isSeq(items)) {
    items.items.forEach((item, i) => {
      const sub = readItem(item as Node, `items[${i}]`);
      parseRoot(sub, readItem, opts, out);
      sub.flush?.();
    });
    return;
  }
  if (kind && isKind(kind.value)) {
    const obj = parseObject(r, field, opts, root.prefix);
    if (obj) out.push(obj);
    return;
  }
  if (!kind) {
    // Reported the usual way (required, or not a string).
    const top = r.map(field, ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
    if (top && !top.kind) r.error(field.at, 'kind', 'required');
    else if (top?.kind) r.str(top.kind);
    return;
  }
  const at = r.posOf(kind.node.range?.[0] ?? 0);
  const near = Object.keys(KINDS).find((k) => k.toLowerCase() === kind.value.toLowerCase());
  if (near) {
    r.error(at, 'kind', `unknown kind '${kind.value}': did you mean ${near}?`);
    return;
  }
  if (!apiVersion) {
    r.error(at, 'kind', `unknown kind '${kind.value}' without apiVersion: not a Kubernetes object`);
    return;
  }
  const group = Object.keys(SECURITY_GROUPS).find((g) => apiVersion.value.startsWith(g));
  if (group !== undefined) {
    const known = Object.keys(KINDS).filter((k) => KINDS[k as Kind].apiVersions === ISTIO_SECURITY);
    r.error(
      at,
      'kind',
      `unknown kind '${kind.value}' in ${apiVersion.value}: security kinds are never skipped; ${SECURITY_GROUPS[group] || `meshpilot knows ${known.join(', ')}`}`,
    );
    return;
  }
  const hint = SKIP_HINTS[kind.value];
  r.warn(
    at,
    'kind',
    `skipped ${kind.value} ${peekName(field.node)} (${apiVersion.value}): meshpilot does not act on this kind${hint ? `; ${hint}` : ''}`,
  );
}

// Fields the API server fills in; `kubectl get -o yaml` output carries them, and they mean nothing here.
const SERVER_METADATA = [
  'uid',
  'generateName',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'managedFields',
  'selfLink',
  'ownerReferences',
  'finalizers',
];

function parseObject(r: DocReader, root: Field, opts: ParseOptions, prefix: string | undefined): ParsedObject | undefined {
  // `status` is written by controllers, never by users: ignored like server metadata.
  const top = r.map(root, [
    'apiVersion',
    'kind',
    'metadata',
    'spec',
    'status',
    'secrets',
    'imagePullSecrets',
    'automountServiceAccountToken',
  ]);
  if (!top?.kind) return undefined;
  const kind = r.str(top.kind);
  if (kind === undefined || !isKind(kind)) return undefined;
  const spec = KINDS[kind];
  r.api = spec.apiVersions.includes('v1') ? 'Kubernetes' : 'Istio';
  if (!top.apiVersion) r.error(root.at, 'apiVersion', `required: ${spec.apiVersions.join(' or ')}`);
  else {
    const v = r.str(top.apiVersion);
    if (v !== undefined && !spec.apiVersions.includes(v))
      r.error(top.apiVersion.at, 'apiVersion', `unknown apiVersion '${v}' for kind ${kind}: use ${spec.apiVersions.join(' or ')}`);
  }
  for (const key of ['secrets', 'imagePullSecrets', 'automountServiceAccountToken']) {
    const f = top[key];
    if (f && kind !== 'ServiceAccount') r.error(f.at, key, `unknown field '${key}'`);
  }
  if (top.spec && !spec.hasSpec) r.error(top.spec.at, 'spec', `unknown field 'spec': a ${kind} has no spec`);
  const header = parseMetadata(r, root, top, spec, opts, prefix);
  if (!header) return undefined;
  return spec.parse(r, header, spec.hasSpec ? top.spec : undefined);
}

function parseMetadata(
  r: DocReader,
  root: Field,
  top: Record<string, Field>,
  spec: KindSpec,
  opts: ParseOptions,
  prefix: string | undefined,
): ObjectHeader | undefined {
  if (!top.metadata) {
    r.error(root.at, 'metadata', 'required');
    return undefined;
  }
  const m = r.map(top.metadata, ['name', 'namespace', 'labels', 'annotations', ...SERVER_METADATA]);
  if (!m) return undefined;
  if (!m.name) {
    r.error(top.metadata.at, 'metadata.name', 'required');
    return undefined;
  }
  const name = r.nonEmptyStr(m.name);
  if (name === undefined) return undefined;
  const nameProblem = spec.checkName(name);
  if (nameProblem) r.error(m.name.at, 'metadata.name', nameProblem);
  let namespace = opts.defaultNamespace ?? 'default';
  if (m.namespace) {
    const ns = r.nonEmptyStr(m.namespace);
    const problem = ns !== undefined ? checkDns1123Label(ns) : undefined;
    if (problem) r.error(m.namespace.at, 'metadata.namespace', problem);
    else if (ns !== undefined) namespace = ns;
  } else if (spec.namespaced && opts.warnImplicitNamespace)
    r.warn(
      top.metadata.at,
      'metadata.namespace',
      `no namespace: ${name} lands in '${namespace}'${opts.defaultNamespace ? ' (--namespace)' : ''}; write metadata.namespace`,
    );
  if (!spec.namespaced) namespace = '';
  const labels = m.labels ? readLabels(r, m.labels) : {};
  const annotations: Record<string, string> = {};
  for (const e of m.annotations ? (r.entries(m.annotations) ?? []) : []) {
    const problem = checkLabelKey(e.key);
    if (problem) r.error(e.keyAt, e.value.path, problem.replace('label key', 'annotation key'));
    const v = r.str(e.value);
    if (!problem && v !== undefined) annotations[e.key] = v;
  }
  return {
    namespace,
    name,
    labels,
    annotations,
    at: root.at,
    top,
    // The field map is filled while the spec is read: it is complete once parsing returns.
    origin: { file: r.file, line: root.at.line, column: root.at.column, fields: r.fields, ...(prefix ? { pathPrefix: prefix } : {}) },
  };
}
