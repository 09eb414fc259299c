// Turns one file's text into parsed objects: YAML syntax, the Kubernetes envelope, then the kind's spec.
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import type {
  AuthorizationPolicy,
  Labels,
  MeshSettings,
  PeerAuthentication,
  RequestAuthentication,
  Service,
  ServiceAccount,
  SourcePosition,
  SourceRef,
  WorkloadEntry,
} from '../model/index.js';
import { readLabels } from './common.js';
import type { ConfigDiagnostic } from './diagnostics.js';
import { parseMeshConfig } from './mesh-config.js';
import { checkDns1035Label, checkDns1123Label, checkDns1123Subdomain, checkLabelKey } from './names.js';
import { parseAuthorizationPolicy, parsePeerAuthentication, parseRequestAuthentication } from './policies.js';
import { parseService, parseServiceAccount, parseWorkloadEntry } from './workloads.js';
import { DocReader, type Field } from './yaml-reader.js';

/** The Kubernetes envelope of one object, read before its spec. */
export interface ObjectHeader {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Labels;
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
  | { readonly kind: 'AuthorizationPolicy'; readonly value: AuthorizationPolicy }
  | { readonly kind: 'RequestAuthentication'; readonly value: RequestAuthentication }
  | { readonly kind: 'MeshConfig'; readonly value: MeshSettings & { readonly origin: SourceRef }; readonly name: string };

type Kind = ParsedObject['kind'];

interface KindSpec {
  readonly apiVersions: readonly string[];
  readonly hasSpec: boolean;
  readonly namespaced: boolean;
  readonly checkName: (s: string) => string | undefined;
  readonly parse: (r: DocReader, h: ObjectHeader, spec: Field | undefined) => ParsedObject;
}

const ISTIO_NETWORKING = ['networking.istio.io/v1', 'networking.istio.io/v1beta1'];
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
    parse: (r, h, spec) => ({ kind: 'AuthorizationPolicy', value: parseAuthorizationPolicy(r, h, spec) }),
  },
  RequestAuthentication: {
    apiVersions: ISTIO_SECURITY,
    hasSpec: true,
    namespaced: true,
    checkName: checkDns1123Subdomain,
    parse: (r, h, spec) => ({ kind: 'RequestAuthentication', value: parseRequestAuthentication(r, h, spec) }),
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

/** Parses every document of one file; `syntaxErrors` tells whether any document could not be read as YAML. */
export function parseFileText(
  text: string,
  file: string,
  diagnostics: ConfigDiagnostic[],
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
    const obj = parseObject(r, root);
    if (obj) objects.push(obj);
  }
  return { objects, syntaxErrors };
}

function parseObject(r: DocReader, root: Field): ParsedObject | undefined {
  const top = r.map(root, ['apiVersion', 'kind', 'metadata', 'spec', 'secrets', 'imagePullSecrets', 'automountServiceAccountToken']);
  if (!top) return undefined;
  if (!top.kind) {
    r.error(root.at, 'kind', 'required');
    return undefined;
  }
  const kind = r.str(top.kind);
  if (kind === undefined) return undefined;
  if (!isKind(kind)) {
    r.error(top.kind.at, 'kind', `unknown kind '${kind}': one of ${Object.keys(KINDS).join(', ')}`);
    return undefined;
  }
  const spec = KINDS[kind];
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
  const header = parseMetadata(r, root, top, spec);
  if (!header) return undefined;
  return spec.parse(r, header, spec.hasSpec ? top.spec : undefined);
}

function parseMetadata(r: DocReader, root: Field, top: Record<string, Field>, spec: KindSpec): ObjectHeader | undefined {
  if (!top.metadata) {
    r.error(root.at, 'metadata', 'required');
    return undefined;
  }
  const m = r.map(top.metadata, ['name', 'namespace', 'labels', 'annotations']);
  if (!m) return undefined;
  if (!m.name) {
    r.error(top.metadata.at, 'metadata.name', 'required');
    return undefined;
  }
  const name = r.nonEmptyStr(m.name);
  if (name === undefined) return undefined;
  const nameProblem = spec.checkName(name);
  if (nameProblem) r.error(m.name.at, 'metadata.name', nameProblem);
  let namespace = 'default';
  if (m.namespace) {
    const ns = r.nonEmptyStr(m.namespace);
    const problem = ns !== undefined ? checkDns1123Label(ns) : undefined;
    if (problem) r.error(m.namespace.at, 'metadata.namespace', problem);
    else if (ns !== undefined) namespace = ns;
  }
  if (!spec.namespaced) namespace = '';
  const labels = m.labels ? readLabels(r, m.labels) : {};
  for (const e of m.annotations ? (r.entries(m.annotations) ?? []) : []) {
    const problem = checkLabelKey(e.key);
    if (problem) r.error(e.keyAt, e.value.path, problem.replace('label key', 'annotation key'));
    r.str(e.value);
  }
  return {
    namespace,
    name,
    labels,
    at: root.at,
    top,
    // The field map is filled while the spec is read: it is complete once parsing returns.
    origin: { file: r.file, line: root.at.line, column: root.at.column, fields: r.fields },
  };
}
