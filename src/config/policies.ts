// Parsers for security.istio.io PeerAuthentication, AuthorizationPolicy and RequestAuthentication,
// with the structural checks of Istio's own validation (pkg/config/validation) that apply here.
import {
  parseDuration,
  type AuthorizationPolicy,
  type AuthzAction,
  type AuthzCondition,
  type AuthzOperation,
  type AuthzRule,
  type AuthzSource,
  type JwtRule,
  type MtlsMode,
  type PeerAuthentication,
  type RequestAuthentication,
} from '../model/index.js';
import { matchKind, readWorkloadSelector } from './common.js';
import { checkDns1123Label, checkDns1123Subdomain, checkIpOrCidr, checkPort } from './names.js';
import type { ObjectHeader } from './parse-document.js';
import type { DocReader, Field } from './yaml-reader.js';

/** A `targetRef(s)` entry naming a Service of the policy's namespace: resolved to that Service's selector when the config is built. */
export interface ServiceTarget {
  readonly name: string;
  readonly path: string;
}

/** A parsed policy and the Services its targetRef(s) name, if it used them. */
export interface Targeted<T> {
  readonly value: T;
  readonly targets?: readonly ServiceTarget[];
}

// targetRef kinds by `group/kind` (the core group is written '' or 'core'): what each selects here.
const TARGET_KINDS: Readonly<Record<string, 'service' | { unsupported: string }>> = {
  '/Service': 'service',
  'core/Service': 'service',
  'gateway.networking.k8s.io/Gateway': { unsupported: 'meshpilot runs no gateways or waypoints' },
  '/Gateway': { unsupported: 'meshpilot runs no gateways or waypoints (and a Gateway is in group gateway.networking.k8s.io)' },
  'gateway.networking.k8s.io/GatewayClass': { unsupported: 'meshpilot runs no gateways or waypoints' },
  'networking.istio.io/ServiceEntry': { unsupported: 'a policy on a ServiceEntry applies at waypoints, which meshpilot does not run' },
};

function readTargetRef(r: DocReader, h: ObjectHeader, f: Field): ServiceTarget | undefined {
  const m = r.map(f, ['group', 'kind', 'name', 'namespace']);
  if (!m) return undefined;
  for (const k of ['kind', 'name'] as const) if (!m[k]) r.error(f.at, `${f.path}.${k}`, 'required');
  const group = m.group ? (r.str(m.group) ?? '') : '';
  const kind = m.kind ? r.nonEmptyStr(m.kind) : undefined;
  const name = m.name ? r.nonEmptyStr(m.name) : undefined;
  if (m.namespace) {
    const ns = r.str(m.namespace);
    // Istio: a policy may only target resources of its own namespace.
    if (ns !== undefined && ns !== h.namespace)
      r.error(m.namespace.at, m.namespace.path, `must be the policy's namespace '${h.namespace}' (or left out)`);
  }
  if (kind === undefined || name === undefined) return undefined;
  const spec = TARGET_KINDS[`${group}/${kind}`];
  const at = m.kind!.at;
  if (!spec) {
    r.error(
      at,
      `${f.path}.kind`,
      `unknown targetRef kind '${kind}'${group ? ` in group '${group}'` : ''}: meshpilot supports kind Service (core group)`,
    );
    return undefined;
  }
  if (spec !== 'service') {
    r.error(at, `${f.path}.kind`, `valid Istio targetRef kind ${kind}, not supported by meshpilot: ${spec.unsupported}`);
    return undefined;
  }
  return { name, path: f.path };
}

/** Reads `targetRef` / `targetRefs` (at most one of them, and not with a selector, as Istio validates). */
function readTargets(r: DocReader, h: ObjectHeader, m: Record<string, Field>): ServiceTarget[] | undefined {
  if (!m.targetRef && !m.targetRefs) return undefined;
  if (m.targetRef && m.targetRefs) r.error(m.targetRefs.at, m.targetRefs.path, 'set targetRef or targetRefs, not both');
  if (m.selector) r.error(m.selector.at, m.selector.path, 'set selector or targetRef(s), not both');
  const fields = [...(m.targetRef ? [m.targetRef] : []), ...(m.targetRefs ? (r.list(m.targetRefs) ?? []) : [])];
  return fields.flatMap((f) => readTargetRef(r, h, f) ?? []);
}

const MTLS_MODES: readonly MtlsMode[] = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'];

function readMode(r: DocReader, f: Field): MtlsMode | undefined {
  const m = r.map(f, ['mode']);
  if (!m?.mode) return 'UNSET';
  const mode = r.str(m.mode);
  if (mode === undefined) return undefined;
  if (!(MTLS_MODES as readonly string[]).includes(mode)) {
    r.error(m.mode.at, m.mode.path, `unknown mode '${mode}': one of ${MTLS_MODES.join(', ')}`);
    return undefined;
  }
  return mode as MtlsMode;
}

/** Reads a PeerAuthentication; port-level modes need a selector, as in Istio. */
export function parsePeerAuthentication(r: DocReader, h: ObjectHeader, spec: Field | undefined): PeerAuthentication {
  const m = spec ? (r.map(spec, ['selector', 'mtls', 'portLevelMtls']) ?? {}) : {};
  const selector = readWorkloadSelector(r, m.selector);
  const mtlsMode = (m.mtls && readMode(r, m.mtls)) || 'UNSET';
  const portLevelMtls: Record<number, MtlsMode> = {};
  if (m.portLevelMtls) {
    if (!selector)
      r.error(
        m.portLevelMtls.at,
        m.portLevelMtls.path,
        'requires a selector: namespace- and mesh-wide policies cannot set port-level mTLS',
      );
    for (const e of r.entries(m.portLevelMtls) ?? []) {
      const port = /^\d+$/.test(e.key) ? Number(e.key) : NaN;
      const problem = Number.isNaN(port) ? `'${e.key}' is not a port number` : checkPort(port);
      if (problem) r.error(e.keyAt, e.value.path, problem);
      const mode = readMode(r, e.value);
      if (!problem && mode) portLevelMtls[port] = mode;
    }
  }
  return { namespace: h.namespace, name: h.name, origin: h.origin, ...(selector ? { selector } : {}), mtlsMode, portLevelMtls };
}

// Checks of each string list of a rule, by field name; each returns a problem (error) or undefined.
type Check = (s: string) => string | undefined;

const wildcard: Check = (s) => {
  const k = matchKind(s);
  return typeof k === 'object' ? k.problem : undefined;
};

const PRINCIPAL = /^[a-z0-9._-]+\/ns\/[^/]+\/sa\/[^/]+$/;

/** Checks an Istio principal's syntax: any string, `*`, or with a `*` at one end; the spiffe:// scheme is refused. */
export function checkPrincipal(s: string): string | undefined {
  const k = matchKind(s);
  if (typeof k === 'object') return k.problem;
  // Istio would prefix the scheme again (spiffe://spiffe://...) and never match: refuse rather than guess.
  if (s.startsWith('spiffe://'))
    return `principal '${s}' must not include the spiffe:// scheme: write <trust-domain>/ns/<namespace>/sa/<service-account>`;
  return undefined;
}

/**
 * Warns about an exact principal Istio accepts but no mesh identity can have (a short form such as
 * `admin`, or a namespace that is not a DNS label): it is compiled as written and matches nothing.
 */
export function principalWarning(s: string): string | undefined {
  if (matchKind(s) !== 'exact') return undefined;
  if (!PRINCIPAL.test(s))
    return `principal '${s}' never matches a mesh identity: mesh identities are <trust-domain>/ns/<namespace>/sa/<service-account>`;
  const problem = checkDns1123Label(s.split('/')[2] as string);
  return problem ? `principal '${s}' never matches a mesh identity: namespace ${problem}` : undefined;
}

/** Checks a service account reference: `<namespace>/<service-account>` or `<service-account>` (the policy's namespace), no wildcards (Istio 1.24+). */
export function checkServiceAccount(s: string): string | undefined {
  if (s.includes('*')) return `'${s}': service accounts take no wildcards; write <namespace>/<service-account>`;
  const parts = s.split('/');
  if (parts.length > 2) return `'${s}' must be <namespace>/<service-account> or <service-account>`;
  const nsProblem = parts.length === 2 ? checkDns1123Label(parts[0]!) : undefined;
  if (nsProblem) return `'${s}': namespace ${nsProblem}`;
  const saProblem = checkDns1123Subdomain(parts.at(-1)!);
  return saProblem ? `'${s}': service account ${saProblem}` : undefined;
}

// Istio reads a service account without a namespace as one of the policy's namespace; the model
// always holds `<namespace>/<service-account>`.
const qualifyServiceAccount = (namespace: string) => (s: string) => (s.includes('/') ? s : `${namespace}/${s}`);

const namespaceCheck: Check = (s) => {
  const k = matchKind(s);
  if (typeof k === 'object') return k.problem;
  return k === 'exact' ? checkDns1123Label(s) : undefined;
};

const portCheck: Check = (s) => (/^\d+$/.test(s) ? checkPort(Number(s)) : `'${s}' is not a port number`);

// Envoy's uri_template matcher accepts these characters in a literal segment (RFC 3986 pchar, unescaped).
const TEMPLATE_LITERAL = /^[A-Za-z0-9\-._~%!$&'()+,;:@=]+$/;

/**
 * Checks an Istio path template (`{*}` one segment, `{**}` any number, the last operator only),
 * after Istio's rules: operators are whole segments and do not mix with `*` globs.
 */
export function checkPathTemplate(s: string): string | undefined {
  // Envoy's URI template matcher aborts the whole proxy (an uncaught exception, not a NACK) on a
  // template it cannot parse, so anything not plainly valid is refused here, stricter than needed.
  if (!s.startsWith('/')) return `'${s}': a path template starts with '/'`;
  if (s.replace(/\{\*\*?\}/g, '').includes('*')) return `'${s}': a path template cannot also use a '*' glob; use {*} or {**}`;
  const segments = s.slice(1).split('/');
  let operators = 0;
  for (const [i, seg] of segments.entries()) {
    if (seg === '{*}' || seg === '{**}') {
      operators++;
      if (seg === '{**}' && i !== segments.length - 1) return `'${s}': {**} must be the last segment of a path template`;
      continue;
    }
    if (seg.includes('{') || seg.includes('}'))
      return `'${s}': {*} and {**} must each be a whole path segment (only {*} and {**} are supported)`;
    // An empty segment (`//`) is refused by Istio; only the trailing one after a final '/' is fine.
    if (seg === '' && i !== segments.length - 1) return `'${s}': a path template has no empty segments ('//')`;
    if (seg !== '' && !TEMPLATE_LITERAL.test(seg)) return `'${s}': segment '${seg}' has characters a path template cannot hold`;
  }
  return operators === 0 ? `'${s}': not a path template` : undefined;
}

const pathCheck: Check = (s) => (s.includes('{') || s.includes('}') ? checkPathTemplate(s) : wildcard(s));

const PORT_HINT = ' (ports are strings in Istio policies: quote them, e.g. "8080")';

function readStrings(r: DocReader, f: Field | undefined, check: Check, hint = '', warning?: Check): string[] {
  if (!f) return [];
  const out: string[] = [];
  for (const s of r.strList(f, hint)) {
    const problem = check(s.value);
    if (problem) {
      r.error(s.field.at, s.field.path, problem);
      continue;
    }
    const caution = warning?.(s.value);
    if (caution) r.warn(s.field.at, s.field.path, caution);
    out.push(s.value);
  }
  return out;
}

const pathWarning: Check = (s) => {
  if (s.includes('{')) return undefined;
  const k = matchKind(s);
  return (k === 'exact' || k === 'prefix') && !s.startsWith('/') ? `path '${s}' never matches: request paths start with '/'` : undefined;
};

// Values Istio accepts that deserve a word: kept, and warned about.
const WARNINGS: Readonly<Record<string, Check>> = {
  paths: (s) => pathWarning(s),
  notPaths: (s) => pathWarning(s),
  principals: principalWarning,
  notPrincipals: principalWarning,
};

const SOURCE_FIELDS: Readonly<Record<keyof AuthzSource, Check>> = {
  principals: checkPrincipal,
  notPrincipals: checkPrincipal,
  serviceAccounts: checkServiceAccount,
  notServiceAccounts: checkServiceAccount,
  requestPrincipals: wildcard,
  notRequestPrincipals: wildcard,
  namespaces: namespaceCheck,
  notNamespaces: namespaceCheck,
  ipBlocks: checkIpOrCidr,
  notIpBlocks: checkIpOrCidr,
  remoteIpBlocks: checkIpOrCidr,
  notRemoteIpBlocks: checkIpOrCidr,
};

const OPERATION_FIELDS: Readonly<Record<keyof AuthzOperation, Check>> = {
  hosts: wildcard,
  notHosts: wildcard,
  ports: portCheck,
  notPorts: portCheck,
  methods: wildcard,
  notMethods: wildcard,
  paths: pathCheck,
  notPaths: pathCheck,
};

function readClause<K extends string>(
  r: DocReader,
  f: Field,
  fields: Readonly<Record<K, Check>>,
  what: string,
): Record<K, string[]> | undefined {
  const names = Object.keys(fields) as K[];
  const m = r.map(f, names);
  if (!m) return undefined;
  if (Object.keys(m).length === 0) r.error(f.at, f.path, `must not be empty: set at least one of ${what}`);
  const out = {} as Record<K, string[]>;
  for (const name of names) {
    const field = m[name];
    const isPort = name === 'ports' || name === 'notPorts';
    out[name] = readStrings(r, field, fields[name], isPort ? PORT_HINT : '', WARNINGS[name]);
  }
  return out;
}

const WHEN_KEYS = new Set([
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.principal',
  'source.serviceAccount',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'destination.ip',
  'destination.port',
  'connection.sni',
]);

const CONDITIONS_DOC = 'https://istio.io/latest/docs/reference/config/security/conditions/';

// Keys users reach for that are not in Istio's conditions list, and what Istio offers instead.
const NOT_CONDITIONS: Readonly<Record<string, string>> = {
  'source.trustDomain': "match the trust domain with source.principal values such as '<trust-domain>/*'",
  'source.user': 'use source.principal',
  'request.path': 'use to.operation.paths',
  'request.method': 'use to.operation.methods',
  'request.host': 'use to.operation.hosts',
  'destination.namespace': 'Istio replaced it with the policy namespace (metadata.namespace)',
  'destination.name': 'Istio dropped it with the v1alpha1 API; use the selector',
  'destination.user': 'Istio dropped it with the v1alpha1 API; use the selector',
};

/** Checks an AuthorizationPolicy condition key against Istio's list (docs: authorization-policy conditions). */
export function checkWhenKey(key: string): string | undefined {
  if (WHEN_KEYS.has(key)) return undefined;
  if (/^request\.headers\[[^[\]]+\]$/.test(key)) return undefined;
  if (/^request\.auth\.claims(\[[^[\]]+\])+$/.test(key)) return undefined;
  if (/^request\.experimental\.inline\.headers\[[^[\]]+\]$/.test(key))
    return `valid Istio condition key '${key}', not supported by meshpilot: use request.headers[...]`;
  if (/^experimental\.envoy\.filters\.[^[\]]+\[[^[\]]+\]$/.test(key))
    return `valid Istio condition key '${key}', not supported by meshpilot: experimental filter metadata matching`;
  if (key === 'request.headers' || key === 'request.auth.claims')
    return `condition key '${key}' needs a name in brackets, e.g. ${key}[name]`;
  if (/^destination\.labels\[[^[\]]+\]$/.test(key))
    return `unknown condition key '${key}': Istio replaced it with the workload selector (spec.selector)`;
  const instead = NOT_CONDITIONS[key];
  return `unknown condition key '${key}': not one of Istio's conditions (${CONDITIONS_DOC})${instead ? `; ${instead}` : ''}`;
}

function whenValueCheck(key: string): Check {
  switch (key) {
    case 'source.ip':
    case 'remote.ip':
    case 'destination.ip':
      return checkIpOrCidr;
    case 'destination.port':
      return portCheck;
    case 'source.principal':
      return checkPrincipal;
    case 'source.namespace':
      return namespaceCheck;
    case 'source.serviceAccount':
      return checkServiceAccount;
    default:
      return wildcard;
  }
}

function readCondition(r: DocReader, f: Field): AuthzCondition | undefined {
  const m = r.map(f, ['key', 'values', 'notValues']);
  if (!m) return undefined;
  if (!m.key) {
    r.error(f.at, `${f.path}.key`, 'required');
    return undefined;
  }
  const key = r.nonEmptyStr(m.key);
  if (key === undefined) return undefined;
  const problem = checkWhenKey(key);
  if (problem) {
    r.error(m.key.at, m.key.path, problem);
    return undefined;
  }
  const check = whenValueCheck(key);
  const warning = key === 'source.principal' ? principalWarning : undefined;
  const values = readStrings(r, m.values, check, '', warning);
  const notValues = readStrings(r, m.notValues, check, '', warning);
  if (!m.values && !m.notValues) r.error(f.at, `${f.path}.values`, 'required: set values or notValues');
  return { key, values, notValues };
}

function readRule(r: DocReader, f: Field, namespace: string): AuthzRule {
  const m = r.map(f, ['from', 'to', 'when']) ?? {};
  const from: { source: AuthzSource }[] = [];
  for (const item of m.from ? (r.list(m.from) ?? []) : []) {
    const im = r.map(item, ['source']);
    if (!im) continue;
    if (!im.source) {
      r.error(item.at, `${item.path}.source`, 'required');
      continue;
    }
    const source = readClause(
      r,
      im.source,
      SOURCE_FIELDS,
      'principals, serviceAccounts, namespaces, ipBlocks, requestPrincipals, remoteIpBlocks or their not* forms',
    );
    if (!source) continue;
    const sas = source.serviceAccounts.length + source.notServiceAccounts.length > 0;
    const ids = source.principals.length + source.notPrincipals.length + source.namespaces.length + source.notNamespaces.length > 0;
    // Istio's validation: serviceAccounts name whole identities, so they cannot be combined with principals or namespaces.
    if (sas && ids)
      r.error(im.source.at, im.source.path, 'serviceAccounts cannot be set together with principals or namespaces (or their not* forms)');
    else
      from.push({
        source: {
          ...source,
          serviceAccounts: source.serviceAccounts.map(qualifyServiceAccount(namespace)),
          notServiceAccounts: source.notServiceAccounts.map(qualifyServiceAccount(namespace)),
        },
      });
  }
  const to: { operation: AuthzOperation }[] = [];
  for (const item of m.to ? (r.list(m.to) ?? []) : []) {
    const im = r.map(item, ['operation']);
    if (!im) continue;
    if (!im.operation) {
      r.error(item.at, `${item.path}.operation`, 'required');
      continue;
    }
    const operation = readClause(r, im.operation, OPERATION_FIELDS, 'hosts, ports, methods, paths or their not* forms');
    if (operation) to.push({ operation });
  }
  const when: AuthzCondition[] = [];
  for (const item of m.when ? (r.list(m.when) ?? []) : []) {
    const c = readCondition(r, item);
    if (c && c.key === 'source.serviceAccount')
      when.push({
        ...c,
        values: c.values.map(qualifyServiceAccount(namespace)),
        notValues: c.notValues.map(qualifyServiceAccount(namespace)),
      });
    else if (c) when.push(c);
  }
  return { from, to, when };
}

/** The annotation that makes an AuthorizationPolicy a dry run (Istio's experimental `istio.io/dry-run`). */
export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';

// Istio parses the value as a Go bool; anything else leaves the policy enforced, which is the
// fail-closed reading, so it is a warning and not an error.
const GO_BOOLS: Readonly<Record<string, boolean>> = Object.fromEntries([
  ...['1', 't', 'T', 'true', 'TRUE', 'True'].map((s) => [s, true]),
  ...['0', 'f', 'F', 'false', 'FALSE', 'False'].map((s) => [s, false]),
]);

function readDryRun(r: DocReader, h: ObjectHeader, action: AuthzAction): boolean {
  const v = h.annotations[DRY_RUN_ANNOTATION];
  if (v === undefined) return false;
  const path = `metadata.annotations[${JSON.stringify(DRY_RUN_ANNOTATION)}]`;
  const at = h.origin.fields?.get(path) ?? h.at;
  const b = GO_BOOLS[v];
  if (b === undefined) {
    r.warn(at, path, `'${v}' is not a boolean: the policy is enforced (write "true" for a dry run)`);
    return false;
  }
  if (b && (action === 'AUDIT' || action === 'CUSTOM'))
    r.warn(at, path, `dry-run has no effect on ${action} policies (Istio supports it for ALLOW and DENY)`);
  return b && action !== 'AUDIT' && action !== 'CUSTOM';
}

/** Reads an AuthorizationPolicy (CUSTOM with its `provider.name`); targetRefs to Services kept for the build. */
export function parseAuthorizationPolicy(r: DocReader, h: ObjectHeader, spec: Field | undefined): Targeted<AuthorizationPolicy> {
  const m = spec ? (r.map(spec, ['selector', 'targetRef', 'targetRefs', 'action', 'rules', 'provider']) ?? {}) : {};
  const selector = readWorkloadSelector(r, m.selector);
  const targets = readTargets(r, h, m);
  let action: AuthzAction = 'ALLOW';
  if (m.action) {
    const a = r.str(m.action);
    if (a === 'ALLOW' || a === 'DENY' || a === 'AUDIT' || a === 'CUSTOM') action = a;
    else if (a !== undefined) r.error(m.action.at, m.action.path, `unknown action '${a}': one of ALLOW, DENY, AUDIT, CUSTOM`);
  }
  // Istio's validation: CUSTOM needs a provider, and only CUSTOM takes one.
  let provider: string | undefined;
  if (m.provider) {
    const p = r.map(m.provider, ['name']);
    if (p && !p.name) r.error(m.provider.at, `${m.provider.path}.name`, 'required');
    provider = p?.name ? r.nonEmptyStr(p.name) : undefined;
    if (action !== 'CUSTOM') r.error(m.provider.at, m.provider.path, 'provider is only allowed with action CUSTOM');
  } else if (action === 'CUSTOM')
    r.error(m.action!.at, 'spec.provider', 'required with action CUSTOM: name an extensionProviders entry of the MeshConfig');
  const rules = m.rules ? (r.list(m.rules) ?? []).map((f) => readRule(r, f, h.namespace)) : [];
  const dryRun = readDryRun(r, h, action);
  const value: AuthorizationPolicy = {
    namespace: h.namespace,
    name: h.name,
    origin: h.origin,
    ...(selector ? { selector } : {}),
    action,
    rules,
    ...(dryRun ? { dryRun } : {}),
    ...(provider !== undefined && action === 'CUSTOM' ? { provider } : {}),
  };
  return { value, ...(targets ? { targets } : {}) };
}

function readJwks(r: DocReader, f: Field): string | undefined {
  const s = r.nonEmptyStr(f);
  if (s === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(s);
  } catch {
    r.error(f.at, f.path, 'not valid JSON: jwks is a JSON Web Key Set such as {"keys": [...]}');
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object' || !Array.isArray((parsed as { keys?: unknown }).keys)) {
    r.error(f.at, f.path, 'must be a JSON Web Key Set: an object with a "keys" array');
    return undefined;
  }
  return s;
}

function readJwksUri(r: DocReader, f: Field): string | undefined {
  const s = r.nonEmptyStr(f);
  if (s === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(s);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
    r.error(f.at, f.path, `'${s}' is not an http(s) URL`);
    return undefined;
  }
  return s;
}

const JWT_FIELDS = [
  'issuer',
  'audiences',
  'jwks',
  'jwksUri',
  'fromHeaders',
  'fromParams',
  'fromCookies',
  'outputPayloadToHeader',
  'outputClaimToHeaders',
  'forwardOriginalToken',
  'timeout',
  'spaceDelimitedClaims',
];

const nonEmpty: Check = (s) => (s === '' ? 'must not be empty' : undefined);

function readJwtRule(r: DocReader, f: Field): JwtRule | undefined {
  const m = r.map(f, JWT_FIELDS);
  if (!m) return undefined;
  let issuer = '';
  if (!m.issuer) r.error(f.at, `${f.path}.issuer`, 'required');
  else issuer = r.nonEmptyStr(m.issuer) ?? '';
  if (m.jwks && m.jwksUri) r.error(m.jwksUri.at, m.jwksUri.path, 'jwks and jwksUri are mutually exclusive: set one');
  const jwks = m.jwks ? readJwks(r, m.jwks) : undefined;
  const jwksUri = m.jwksUri ? readJwksUri(r, m.jwksUri) : undefined;
  const fromHeaders: { name: string; prefix?: string }[] = [];
  for (const item of m.fromHeaders ? (r.list(m.fromHeaders) ?? []) : []) {
    const hm = r.map(item, ['name', 'prefix']);
    if (!hm) continue;
    if (!hm.name) {
      r.error(item.at, `${item.path}.name`, 'required');
      continue;
    }
    const name = r.nonEmptyStr(hm.name);
    const prefix = hm.prefix ? r.str(hm.prefix) : undefined;
    if (name !== undefined) fromHeaders.push({ name, ...(prefix !== undefined ? { prefix } : {}) });
  }
  const outputClaimToHeaders: { header: string; claim: string }[] = [];
  for (const item of m.outputClaimToHeaders ? (r.list(m.outputClaimToHeaders) ?? []) : []) {
    const om = r.map(item, ['header', 'claim']);
    if (!om) continue;
    if (!om.header) r.error(item.at, `${item.path}.header`, 'required');
    if (!om.claim) r.error(item.at, `${item.path}.claim`, 'required');
    const header = om.header ? r.nonEmptyStr(om.header) : undefined;
    const claim = om.claim ? r.nonEmptyStr(om.claim) : undefined;
    if (header !== undefined && claim !== undefined) outputClaimToHeaders.push({ header, claim });
  }
  let timeoutMs: number | undefined;
  if (m.timeout) {
    const s = r.str(m.timeout, ' (write a duration such as 5s)');
    const d = s !== undefined ? parseDuration(s) : undefined;
    if (d && !d.ok) r.error(m.timeout.at, m.timeout.path, d.error);
    else if (d && d.value <= 0) r.error(m.timeout.at, m.timeout.path, `must be positive, got ${s}`);
    else if (d) timeoutMs = d.value;
  }
  const outputPayloadToHeader = m.outputPayloadToHeader ? r.nonEmptyStr(m.outputPayloadToHeader) : undefined;
  const forwardOriginalToken = m.forwardOriginalToken ? (r.bool(m.forwardOriginalToken) ?? false) : false;
  return {
    issuer,
    audiences: readStrings(r, m.audiences, nonEmpty),
    ...(jwks !== undefined ? { jwks } : {}),
    ...(jwksUri !== undefined ? { jwksUri } : {}),
    fromHeaders,
    fromParams: readStrings(r, m.fromParams, nonEmpty),
    fromCookies: readStrings(r, m.fromCookies, nonEmpty),
    ...(outputPayloadToHeader !== undefined ? { outputPayloadToHeader } : {}),
    outputClaimToHeaders,
    forwardOriginalToken,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(m.spaceDelimitedClaims ? { spaceDelimitedClaims: readStrings(r, m.spaceDelimitedClaims, nonEmpty) } : {}),
  };
}

/** Reads a RequestAuthentication and its JWT rules; targetRefs to Services are kept for the build. */
export function parseRequestAuthentication(r: DocReader, h: ObjectHeader, spec: Field | undefined): Targeted<RequestAuthentication> {
  const m = spec ? (r.map(spec, ['selector', 'targetRef', 'targetRefs', 'jwtRules']) ?? {}) : {};
  const selector = readWorkloadSelector(r, m.selector);
  const targets = readTargets(r, h, m);
  const jwtRules: JwtRule[] = [];
  for (const item of m.jwtRules ? (r.list(m.jwtRules) ?? []) : []) {
    const rule = readJwtRule(r, item);
    if (rule) jwtRules.push(rule);
  }
  const value = { namespace: h.namespace, name: h.name, origin: h.origin, ...(selector ? { selector } : {}), jwtRules };
  return { value, ...(targets ? { targets } : {}) };
}
