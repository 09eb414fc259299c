// AuthorizationPolicy → Envoy RBAC, after Istio's translation (pilot/pkg/security/authz): one
// RBAC filter per action (AUDIT as LOG, then DENY, then ALLOW), one Envoy policy per rule named
// `ns[<ns>]-policy[<name>]-rule[<i>]`, permissions from `to` and principals from `from`, with the
// `when` conditions joined to the side they describe. Compilation fails closed (STYLE 6).
import { workloadPortFor, type AuthorizationPolicy, type AuthzRule, type MeshModel, type WorkloadEntry } from '../model/index.js';
import {
  HttpRbac,
  NetworkRbac,
  packAny,
  RbacAction,
  URI_TEMPLATE_MATCH_TYPE,
  UriTemplateMatchConfig,
  type Any,
  type DeepPartialLike,
  type RbacPolicy,
} from '../proto/index.js';
import { diagnosticAt, type PolicyDiagnostic } from './diagnostics.js';
import { EXT_AUTHZ_POLICY_PREFIX, EXT_AUTHZ_SHADOW_STAT_PREFIX, extAuthzFilter, resolveProvider } from './ext-authz.js';
import {
  headerMatchers,
  idAnd,
  idOr,
  jwtClaim,
  NO_ID,
  parseCidr,
  parseMatch,
  parsePort,
  permAnd,
  permOr,
  stringMatch,
  stringOrListValue,
  escapeRegex,
  type Match,
  type Permission,
  type Principal,
} from './matchers.js';

/** One filter for a workload's inbound chain: an Envoy filter name and its typed config. */
export interface PolicyFilter {
  readonly name: string;
  readonly typedConfig: Any;
}

/** The protocol of a workload port as the sidecar serves it. */
export type PortProtocol = 'http' | 'tcp';

/** The RBAC action of one compiled filter (Envoy's names; AUDIT policies become LOG). */
export type RbacFilterAction = 'LOG' | 'DENY' | 'ALLOW';

/** The RBAC filters for one workload and protocol, in chain order, plus every problem found. */
export interface CompiledAuthorization {
  readonly protocol: PortProtocol;
  /** HTTP RBAC filters (protocol http), in order; empty for tcp. */
  readonly httpFilters: readonly PolicyFilter[];
  /** Network RBAC filters (protocol tcp), in order; empty for http. */
  readonly networkFilters: readonly PolicyFilter[];
  readonly diagnostics: readonly PolicyDiagnostic[];
}

/** The Envoy filter name of HTTP RBAC. */
export const HTTP_RBAC_FILTER = 'envoy.filters.http.rbac';
/** The Envoy filter name of network (TCP) RBAC. */
export const NETWORK_RBAC_FILTER = 'envoy.filters.network.rbac';
const HTTP_RBAC_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBAC';
const NETWORK_RBAC_TYPE = 'envoy.extensions.filters.network.rbac.v3.RBAC';

type EnvoyPolicy = DeepPartialLike<RbacPolicy>;
const KIND = 'AuthorizationPolicy';

/** Istio's name for the Envoy policy of one rule. */
export function rbacPolicyName(namespace: string, name: string, rule: number | string): string {
  return `ns[${namespace}]-policy[${name}]-rule[${rule}]`;
}

/** Parses an Envoy policy name back into the AuthorizationPolicy and rule it came from. */
export function parseRbacPolicyName(s: string): { namespace: string; name: string; rule: string } | undefined {
  const m = /^ns\[([^\]]*)\]-policy\[([^\]]*)\]-rule\[([^\]]*)\]$/.exec(s);
  return m ? { namespace: m[1]!, name: m[2]!, rule: m[3]! } : undefined;
}

// ---- fields ---------------------------------------------------------------------------------

type Side = 'principal' | 'permission';

interface Settings {
  readonly trustDomain: string;
  readonly aliases: readonly string[];
  /**
   * Istio's `ports` and `destination.port` name the workload's port. Without iptables the
   * sidecar takes connections on the service port, which is what Envoy's destination_port
   * sees; this maps each workload port to the listener ports that forward to it.
   */
  readonly listenerPortsOf: (workloadPort: number) => readonly number[];
}

/** Builds the matcher of one value; `broaden` is set where matching more is the fail-closed side. */
type Build<T> = (value: string, broaden: boolean, s: Settings) => { ok: true; value: T; warning?: string } | { ok: false; error: string };

interface FieldSpec {
  readonly side: Side;
  readonly httpOnly: boolean;
  readonly build: Build<Permission> | Build<Principal>;
}

const withMatch =
  <T>(
    f: (m: Match, broaden: boolean, s: Settings, raw: string) => T | { ok: false; error: string } | { ok: true; value: T; warning: string },
  ): Build<T> =>
  (value, broaden, s) => {
    const m = parseMatch(value);
    if (!m.ok) return m;
    const r = f(m.value, broaden, s, value);
    if (r && typeof r === 'object' && 'ok' in r) return r as ReturnType<Build<T>>;
    return { ok: true, value: r as T };
  };

// Istio's trust domain aliasing (pkg/config/security/trustdomain): a principal in the mesh's trust
// domain, one of its aliases, or the literal `cluster.local` stands for the same identity in every one of them.
function expandTrustDomains(p: string, s: Settings): string[] {
  if (p.startsWith('*')) return [p];
  const slash = p.indexOf('/');
  if (slash < 0) return [p];
  const td = p.slice(0, slash);
  const all = [s.trustDomain, ...s.aliases];
  if (!all.includes(td) && td !== 'cluster.local') return [p];
  return [...new Set(all)].map((t) => t + p.slice(slash));
}

const SPIFFE = 'spiffe://';

function withText(m: Match, raw: string): Match {
  if (m.kind === 'any') return m;
  if (m.kind === 'prefix') return { kind: 'prefix', text: raw.slice(0, -1) };
  if (m.kind === 'suffix') return { kind: 'suffix', text: raw.slice(1) };
  return { kind: 'exact', text: raw };
}

const principalBuild: Build<Principal> = withMatch((m, _b, s, raw) => {
  const one = (mm: Match): Principal => {
    const auth = (sm: ReturnType<typeof stringMatch>): Principal => ({ authenticated: { principalName: sm } });
    // A suffix must also start with the scheme: the URI SAN of a mesh peer is always spiffe://.
    if (mm.kind === 'suffix') return idAnd([auth({ prefix: SPIFFE }), auth(stringMatch(mm))]);
    return auth(stringMatch(mm, { prefix: SPIFFE }));
  };
  if (m.kind === 'any') return one(m);
  // Expanding the trust domain keeps the `*` where it was, so every expansion parses as `m` did.
  return idOr(expandTrustDomains(raw, s).map((p) => one(withText(m, p))));
});

// A namespace is the path segment after /ns/ of the peer's SPIFFE ID. An exact namespace is matched
// with `contains: /ns/<ns>/sa/` (a workload ID has exactly four slashes in its path, so the match
// is anchored); wildcards need a regex, built from the escaped text.
const namespaceBuild: Build<Principal> = withMatch((m) => {
  const auth = (sm: ReturnType<typeof stringMatch>): Principal => ({ authenticated: { principalName: sm } });
  if (m.kind === 'exact') return idAnd([auth({ prefix: SPIFFE }), auth({ contains: `/ns/${m.text}/sa/` })]);
  const seg = m.kind === 'any' ? '[^/]+' : m.kind === 'prefix' ? `${escapeRegex(m.text)}[^/]*` : `[^/]*${escapeRegex(m.text)}`;
  return auth({ safeRegex: { regex: `spiffe://[^/]+/ns/${seg}/sa/[^/]+` } });
});

const cidrBuild =
  (field: 'directRemoteIp' | 'remoteIp'): Build<Principal> =>
  (value) => {
    const c = parseCidr(value);
    return c.ok ? { ok: true, value: { [field]: c.value } } : c;
  };

const iss = (v: Parameters<typeof jwtClaim>[1]): Principal => ({ metadata: jwtClaim(['iss'], v) });
const sub = (v: Parameters<typeof jwtClaim>[1]): Principal => ({ metadata: jwtClaim(['sub'], v) });
const present = { presentMatch: true } as const;
const exactly = (t: string) => ({ stringMatch: { exact: t } });

// Istio's request principal is `<iss>/<sub>`; jwt_authn gives us `iss` and `sub` apart, and an
// issuer may itself contain `/`. So a pattern is matched as the OR over every place the `/`
// between them could be: exact `a/b/c` is (iss=a, sub=b/c) or (iss=a/b, sub=c), and so on.
// An issuer may end with `/` (`https://x.auth0.com/`), so `iss//sub` splits there too.
const requestPrincipalBuild: Build<Principal> = withMatch((m, _b, _s, raw) => {
  // An issuer is never `https:` or `https:/`: the slashes of a `://` are not split points.
  const slashes = (t: string): number[] =>
    [...t].flatMap((ch, i) => (ch === '/' && t[i - 1] !== ':' && !(t[i - 1] === '/' && t[i - 2] === ':') ? [i] : []));
  switch (m.kind) {
    case 'any':
      return idAnd([iss(present), sub(present)]);
    case 'exact': {
      const splits = slashes(m.text).filter((i) => i > 0 && i < m.text.length - 1);
      if (splits.length === 0)
        return { ok: true, value: NO_ID, warning: `request principal '${raw}' never matches: it must be <issuer>/<subject>` };
      return idOr(splits.map((i) => idAnd([iss(exactly(m.text.slice(0, i))), sub(exactly(m.text.slice(i + 1)))])));
    }
    case 'prefix': {
      const out: Principal[] = [idAnd([iss(m.text === '' ? present : { stringMatch: { prefix: m.text } }), sub(present)])];
      for (const i of slashes(m.text).filter((i) => i > 0)) {
        const rest = m.text.slice(i + 1);
        out.push(idAnd([iss(exactly(m.text.slice(0, i))), sub(rest === '' ? present : { stringMatch: { prefix: rest } })]));
      }
      return idOr(out);
    }
    case 'suffix': {
      const out: Principal[] = [idAnd([iss(present), sub({ stringMatch: { suffix: m.text } })])];
      for (const i of slashes(m.text).filter((i) => i < m.text.length - 1)) {
        const head = m.text.slice(0, i);
        out.push(idAnd([iss(head === '' ? present : { stringMatch: { suffix: head } }), sub(exactly(m.text.slice(i + 1)))]));
      }
      return idOr(out);
    }
  }
});

const claimBuild =
  (path: readonly string[]): Build<Principal> =>
  (value) => {
    const m = parseMatch(value);
    return m.ok ? { ok: true, value: { metadata: jwtClaim(path, stringOrListValue(m.value)) } } : m;
  };

const headerBuild =
  (name: string): Build<Principal> =>
  (value, broaden) => {
    const m = parseMatch(value);
    if (!m.ok) return m;
    return { ok: true, value: idOr(headerMatchers(name, m.value, broaden).map((h) => ({ header: h }))) };
  };

// Hosts are matched without regard to case (DNS names are case-insensitive) and without a port: the
// inbound HCM sets strip_any_host_port, so `:authority` reaches RBAC as `example.com`, never `example.com:80`.
const hostBuild: Build<Permission> = (value, broaden) => {
  const m = parseMatch(value);
  if (!m.ok) return m;
  const hdr = (sm: ReturnType<typeof stringMatch>): Permission => ({ header: { name: ':authority', stringMatch: sm } });
  const mm = m.value;
  if (mm.kind === 'any') return { ok: true, value: { header: { name: ':authority', presentMatch: true } } };
  const portAt = mm.kind === 'exact' ? mm.text.search(/:\d+$/) : -1;
  if (portAt > 0 && !mm.text.endsWith(']')) {
    const bare: Match = { kind: 'exact', text: mm.text.slice(0, portAt) };
    // Matching the bare host is wider; keep it only where wider is the fail-closed side.
    return broaden
      ? {
          ok: true,
          value: hdr(stringMatch(bare, { ignoreCase: true })),
          warning: `host '${value}': the port is ignored (hosts are matched without their port)`,
        }
      : {
          ok: true,
          value: hdr(stringMatch(mm, { ignoreCase: true })),
          warning: `host '${value}' never matches: hosts are matched without their port; use ports`,
        };
  }
  const main = hdr(stringMatch(mm, { ignoreCase: true }));
  // A port Envoy could not parse (`example.com:x`) is not stripped; where wider is safe, match it too.
  if (broaden && mm.kind !== 'prefix') {
    const extra = mm.kind === 'exact' ? { prefix: `${mm.text}:`, ignoreCase: true } : { contains: `${mm.text}:`, ignoreCase: true };
    return { ok: true, value: permOr([main, hdr(extra)]) };
  }
  return { ok: true, value: main };
};

const portBuild: Build<Permission> = (value, _broaden, s) => {
  const p = parsePort(value);
  if (!p.ok) return p;
  const listeners = s.listenerPortsOf(p.value);
  // A port no listener forwards to keeps its number: it matches nothing, as in Istio.
  if (listeners.length <= 1) return { ok: true, value: { destinationPort: listeners[0] ?? p.value } };
  return { ok: true, value: permOr(listeners.map((l) => ({ destinationPort: l }))) };
};

const methodBuild: Build<Permission> = withMatch((m) =>
  m.kind === 'any' ? { header: { name: ':method', presentMatch: true } } : { header: { name: ':method', stringMatch: stringMatch(m) } },
);

/** The extension name of Envoy's URI template matcher, as Istio names it in RBAC permissions. */
export const URI_TEMPLATE_MATCHER = 'envoy.path.match.uri_template.uri_template_matcher';

/** Istio's path template (`/a/{*}/c`, `/a/{**}`) in Envoy's URI template syntax (`/a/*` + `/c`, `/a/**`). */
export function envoyPathTemplate(istio: string): string {
  return istio.replaceAll('{**}', '**').replaceAll('{*}', '*');
}

// url_path is the path without query and fragment, after the HCM normalized it (see INBOUND_HCM_OPTIONS).
// A template (checked by the config loader against Istio's rules) goes to Envoy's URI template matcher.
const pathBuild: Build<Permission> = (value, broaden, s) => {
  if (!value.includes('{')) return withMatch((m) => ({ urlPath: { path: stringMatch(m) } }))(value, broaden, s);
  const typedConfig = packAny(URI_TEMPLATE_MATCH_TYPE, UriTemplateMatchConfig, { pathTemplate: envoyPathTemplate(value) });
  return { ok: true, value: { uriTemplate: { name: URI_TEMPLATE_MATCHER, typedConfig } } };
};

// `ns/sa` names that service account in any trust domain, as Istio matches it (its regex is
// `spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?`). The SPIFFE scheme plus the suffix `/ns/<ns>/sa/<sa>`
// matches every mesh identity Istio's regex does, without a regex built from input; it leaves out
// only IDs with extra segments after the service account, which no mesh CA issues.
const serviceAccountBuild: Build<Principal> = (value) => {
  const [ns, sa, ...rest] = value.split('/');
  if (!ns || !sa || rest.length > 0) return { ok: false, error: `'${value}' must be <namespace>/<service-account>` };
  const auth = (sm: ReturnType<typeof stringMatch>): Principal => ({ authenticated: { principalName: sm } });
  return { ok: true, value: idAnd([auth({ prefix: SPIFFE }), auth({ suffix: `/ns/${ns}/sa/${sa}` })]) };
};

const destIpBuild: Build<Permission> = (value) => {
  const c = parseCidr(value);
  return c.ok ? { ok: true, value: { destinationIp: c.value } } : c;
};

const sniBuild: Build<Permission> = withMatch((m) => ({ requestedServerName: stringMatch(m) }));

const FIELDS: Readonly<Record<string, FieldSpec>> = {
  principals: { side: 'principal', httpOnly: false, build: principalBuild },
  serviceAccounts: { side: 'principal', httpOnly: false, build: serviceAccountBuild },
  requestPrincipals: { side: 'principal', httpOnly: true, build: requestPrincipalBuild },
  namespaces: { side: 'principal', httpOnly: false, build: namespaceBuild },
  ipBlocks: { side: 'principal', httpOnly: false, build: cidrBuild('directRemoteIp') },
  remoteIpBlocks: { side: 'principal', httpOnly: false, build: cidrBuild('remoteIp') },
  hosts: { side: 'permission', httpOnly: true, build: hostBuild },
  ports: { side: 'permission', httpOnly: false, build: portBuild },
  methods: { side: 'permission', httpOnly: true, build: methodBuild },
  paths: { side: 'permission', httpOnly: true, build: pathBuild },
  'source.ip': { side: 'principal', httpOnly: false, build: cidrBuild('directRemoteIp') },
  'remote.ip': { side: 'principal', httpOnly: false, build: cidrBuild('remoteIp') },
  'source.namespace': { side: 'principal', httpOnly: false, build: namespaceBuild },
  'source.principal': { side: 'principal', httpOnly: false, build: principalBuild },
  'source.serviceAccount': { side: 'principal', httpOnly: false, build: serviceAccountBuild },
  'request.auth.principal': { side: 'principal', httpOnly: true, build: requestPrincipalBuild },
  'request.auth.audiences': { side: 'principal', httpOnly: true, build: claimBuild(['aud']) },
  'request.auth.presenter': { side: 'principal', httpOnly: true, build: claimBuild(['azp']) },
  'destination.ip': { side: 'permission', httpOnly: false, build: destIpBuild },
  'destination.port': { side: 'permission', httpOnly: false, build: portBuild },
  'connection.sni': { side: 'permission', httpOnly: false, build: sniBuild },
};

/** The spec of a field or condition key, or why it cannot be compiled. */
function fieldSpec(key: string): FieldSpec | string {
  const known = FIELDS[key];
  if (known) return known;
  const h = /^request\.headers\[([^[\]]+)\]$/.exec(key);
  if (h) return { side: 'principal', httpOnly: true, build: headerBuild(h[1]!) };
  const c = /^request\.auth\.claims((\[[^[\]]+\])+)$/.exec(key);
  if (c) {
    const path = [...c[1]!.matchAll(/\[([^[\]]+)\]/g)].map((x) => x[1]!);
    return { side: 'principal', httpOnly: true, build: claimBuild(path) };
  }
  return `condition key '${key}' is not supported`;
}

// ---- rules ----------------------------------------------------------------------------------

/** One field of a rule clause: its key, values and not-values, and where they were written. */
interface Entry {
  readonly key: string;
  readonly path: string;
  readonly valuesPath: string;
  readonly notValuesPath: string;
  readonly values: readonly string[];
  readonly notValues: readonly string[];
}

const SOURCE_PAIRS = [
  ['principals', 'notPrincipals'],
  ['serviceAccounts', 'notServiceAccounts'],
  ['requestPrincipals', 'notRequestPrincipals'],
  ['namespaces', 'notNamespaces'],
  ['ipBlocks', 'notIpBlocks'],
  ['remoteIpBlocks', 'notRemoteIpBlocks'],
] as const;
const OPERATION_PAIRS = [
  ['hosts', 'notHosts'],
  ['ports', 'notPorts'],
  ['methods', 'notMethods'],
  ['paths', 'notPaths'],
] as const;

function clauseEntries<T extends object>(clause: T, pairs: readonly (readonly [string, string])[], base: string): Entry[] {
  const c = clause as Record<string, readonly string[] | undefined>;
  return pairs
    .map(([pos, neg]) => ({
      key: pos,
      path: `${base}.${pos}`,
      valuesPath: `${base}.${pos}`,
      notValuesPath: `${base}.${neg}`,
      values: c[pos] ?? [],
      notValues: c[neg] ?? [],
    }))
    .filter((e) => e.values.length > 0 || e.notValues.length > 0);
}

type Problem = { readonly path: string; readonly message: string };

interface CompiledEntry {
  readonly side: Side;
  readonly matchers: (Permission | Principal)[];
}

type RuleOutcome =
  | { readonly kind: 'ok'; readonly policy: EnvoyPolicy }
  | { readonly kind: 'invalid'; readonly problems: readonly Problem[] }
  | { readonly kind: 'http-only'; readonly fields: readonly Problem[]; readonly policy: EnvoyPolicy };

function compileEntry(
  e: Entry,
  action: AuthorizationPolicy['action'],
  s: Settings,
  problems: Problem[],
  warnings: Problem[],
): CompiledEntry | undefined {
  const spec = fieldSpec(e.key);
  if (typeof spec === 'string') {
    problems.push({ path: e.path, message: spec });
    return undefined;
  }
  const build = (values: readonly string[], negated: boolean, at: string): (Permission | Principal)[] => {
    // Matching more is the fail-closed side in a DENY (or AUDIT) rule, and under a not* in an ALLOW rule.
    const broaden = (action !== 'ALLOW') !== negated;
    const out: (Permission | Principal)[] = [];
    values.forEach((v, i) => {
      const r = (spec.build as Build<Permission | Principal>)(v, broaden, s);
      if (!r.ok) problems.push({ path: `${at}[${i}]`, message: r.error });
      else {
        out.push(r.value);
        if (r.warning) warnings.push({ path: `${at}[${i}]`, message: r.warning });
      }
    });
    return out;
  };
  const pos = build(e.values, false, e.valuesPath);
  const neg = build(e.notValues, true, e.notValuesPath);
  const matchers: (Permission | Principal)[] = [];
  if (spec.side === 'permission') {
    if (pos.length > 0) matchers.push(permOr(pos as Permission[]));
    if (neg.length > 0) matchers.push({ notRule: permOr(neg as Permission[]) });
  } else {
    if (pos.length > 0) matchers.push(idOr(pos as Principal[]));
    if (neg.length > 0) matchers.push({ notId: idOr(neg as Principal[]) });
  }
  return { side: spec.side, matchers };
}

function compileRule(
  rule: AuthzRule,
  base: string,
  action: AuthorizationPolicy['action'],
  protocol: PortProtocol,
  s: Settings,
  warn: (p: Problem) => void,
): RuleOutcome {
  const problems: Problem[] = [];
  // A `when` entry is shared by every from/to list: keyed by path, each is reported once.
  const httpOnly = new Map<string, Problem>();
  const when: Entry[] = rule.when.map((c, k) => ({
    key: c.key,
    path: `${base}.when[${k}]`,
    valuesPath: `${base}.when[${k}].values`,
    notValuesPath: `${base}.when[${k}].notValues`,
    values: c.values,
    notValues: c.notValues,
  }));
  const sideOf = (e: Entry): Side | undefined => {
    const spec = fieldSpec(e.key);
    return typeof spec === 'string' ? undefined : spec.side;
  };
  // On a TCP port, HTTP-only fields cannot be evaluated: Istio drops an ALLOW rule that uses one
  // and ignores the field in a DENY or AUDIT rule (which then matches more).
  const keep = (e: Entry): boolean => {
    const spec = fieldSpec(e.key);
    if (protocol === 'tcp' && typeof spec !== 'string' && spec.httpOnly) {
      httpOnly.set(e.path, { path: e.path, message: e.key });
      return false;
    }
    return true;
  };
  const whenPrincipals = when.filter((e) => sideOf(e) !== 'permission');
  const whenPermissions = when.filter((e) => sideOf(e) === 'permission');
  const fromLists: Entry[][] =
    rule.from.length === 0
      ? [whenPrincipals]
      : rule.from.map((f, j) => [...clauseEntries(f.source, SOURCE_PAIRS, `${base}.from[${j}].source`), ...whenPrincipals]);
  const toLists: Entry[][] =
    rule.to.length === 0
      ? [whenPermissions]
      : rule.to.map((t, j) => [...clauseEntries(t.operation, OPERATION_PAIRS, `${base}.to[${j}].operation`), ...whenPermissions]);

  const warnings: Problem[] = [];
  const compileList = (list: Entry[]): (Permission | Principal)[] => {
    const out: (Permission | Principal)[] = [];
    for (const e of list) {
      if (!keep(e)) continue;
      const c = compileEntry(e, action, s, problems, warnings);
      if (c) out.push(...c.matchers);
    }
    return out;
  };
  const principals = fromLists.map((l) => idAnd(compileList(l) as Principal[]));
  const permissions = toLists.map((l) => permAnd(compileList(l) as Permission[]));
  // Each `when` entry was compiled once per list; report each problem once.
  const uniq = (ps: Problem[]) => [...new Map(ps.map((p) => [`${p.path}\n${p.message}`, p])).values()];
  for (const w of uniq(warnings)) warn(w);
  if (problems.length > 0) return { kind: 'invalid', problems: uniq(problems) };
  const policy: EnvoyPolicy = { permissions, principals };
  return httpOnly.size > 0 ? { kind: 'http-only', fields: [...httpOnly.values()], policy } : { kind: 'ok', policy };
}

// What a rule that matches more than written does, by action (ALLOW never broadens).
const VERB: Readonly<Record<AuthorizationPolicy['action'], string>> = {
  ALLOW: 'allows',
  DENY: 'denies',
  AUDIT: 'audits',
  CUSTOM: 'sends to the external authorizer',
};

const DENY_ALL: EnvoyPolicy = { permissions: [{ any: true }], principals: [{ any: true }] };

/** The Envoy policies of one AuthorizationPolicy, after fail-closed handling of every rule. */
function compilePolicy(
  p: AuthorizationPolicy,
  protocol: PortProtocol,
  s: Settings,
  diags: PolicyDiagnostic[],
): Record<string, EnvoyPolicy> {
  const out: Record<string, EnvoyPolicy> = {};
  const d = (path: string, severity: PolicyDiagnostic['severity'], message: string) =>
    diags.push(diagnosticAt(p, KIND, path, severity, message));
  p.rules.forEach((rule, i) => {
    const base = `spec.rules[${i}]`;
    const name = rbacPolicyName(p.namespace, p.name, i);
    const r = compileRule(rule, base, p.action, protocol, s, (w) => d(w.path, 'warning', w.message));
    if (r.kind === 'invalid') {
      for (const pr of r.problems) d(pr.path, 'error', pr.message);
      if (p.action === 'ALLOW') d(base, 'error', 'rule dropped: it cannot be compiled, so it allows nothing');
      else {
        d(base, 'error', `rule cannot be compiled: it ${VERB[p.action]} every request to the selected workloads`);
        out[name] = DENY_ALL;
      }
      return;
    }
    if (r.kind === 'http-only') {
      const fields = [...new Set(r.fields.map((f) => f.message))].join(', ');
      if (p.action === 'ALLOW') {
        d(base, 'warning', `rule dropped on TCP ports: it uses HTTP-only fields (${fields}), so it matches no TCP connection`);
        return;
      }
      d(base, 'warning', `on TCP ports the HTTP-only fields (${fields}) are ignored: the rule ${VERB[p.action]} more`);
    }
    out[name] = r.policy;
  });
  return out;
}

/**
 * Compiles the AuthorizationPolicies that apply to a workload into RBAC filters for one protocol:
 * an AUDIT (LOG) filter, a DENY filter and an ALLOW filter, each present only when a policy of that
 * action applies. With ALLOW policies, a request that matches none of their rules is denied; an
 * ALLOW policy without rules allows nothing. A rule that cannot be compiled is dropped from an ALLOW
 * policy and becomes deny-all in a DENY policy; a policy that fails unexpectedly denies everything.
 */
export function compileAuthorization(model: MeshModel, workload: WorkloadEntry, protocol: PortProtocol): CompiledAuthorization {
  const diagnostics: PolicyDiagnostic[] = [];
  const s: Settings = {
    trustDomain: model.settings.trustDomain,
    aliases: model.settings.trustDomainAliases,
    listenerPortsOf: (wp) => [
      ...new Set(
        model
          .servicesOf(workload)
          .flatMap((svc) => svc.ports)
          .filter((sp) => workloadPortFor(sp, workload) === wp)
          .map((sp) => sp.port),
      ),
    ],
  };
  // Dry-run policies go to the same action's shadow rules (Istio's builder does the same): Envoy
  // evaluates them and counts the would-be result, but they never decide a request.
  const enforced: Record<RbacFilterAction, Record<string, EnvoyPolicy>> = { LOG: {}, DENY: {}, ALLOW: {} };
  const shadow: Record<RbacFilterAction, Record<string, EnvoyPolicy>> = { LOG: {}, DENY: {}, ALLOW: {} };
  const present = new Set<RbacFilterAction>();
  const presentShadow = new Set<RbacFilterAction>();
  const custom: AuthorizationPolicy[] = [];
  for (const p of model.authorizationPoliciesFor(workload)) {
    if (p.action === 'CUSTOM') {
      custom.push(p);
      continue;
    }
    const action: RbacFilterAction = p.action === 'AUDIT' ? 'LOG' : p.action;
    (p.dryRun ? presentShadow : present).add(action);
    try {
      Object.assign((p.dryRun ? shadow : enforced)[action], compilePolicy(p, protocol, s, diagnostics));
    } catch (e) {
      // A bug, not bad input: never let it open access. The workload denies everything until fixed.
      diagnostics.push(
        diagnosticAt(p, KIND, 'spec', 'error', `internal error compiling the policy (${(e as Error).message}): denying every request`),
      );
      present.add('DENY');
      enforced.DENY[rbacPolicyName(p.namespace, p.name, 'internal-error')] = DENY_ALL;
    }
  }
  const filters: PolicyFilter[] = [];
  // Istio's order: AUDIT, then CUSTOM, then DENY, then ALLOW.
  for (const action of ['LOG', 'CUSTOM', 'DENY', 'ALLOW'] as const) {
    if (action === 'CUSTOM') {
      if (custom.length > 0) filters.push(...compileCustom(model, custom, protocol, s, diagnostics, enforced, present));
      continue;
    }
    // An ALLOW filter without policies denies everything, as it must; LOG and DENY without policies do nothing.
    const rules = present.has(action) && (action === 'ALLOW' || Object.keys(enforced[action]).length > 0) ? enforced[action] : undefined;
    // A dry-run ALLOW policy whose rules were all dropped would deny everything: its shadow says so.
    const shadowRules =
      presentShadow.has(action) && (action === 'ALLOW' || Object.keys(shadow[action]).length > 0) ? shadow[action] : undefined;
    if (!rules && !shadowRules) continue;
    filters.push(rbacFilter(protocol, action, rules, shadowRules));
  }
  return {
    protocol,
    httpFilters: protocol === 'http' ? filters : [],
    networkFilters: protocol === 'tcp' ? filters : [],
    diagnostics,
  };
}

/**
 * The filters of a workload's CUSTOM policies: on HTTP ports a shadow RBAC filter and the ext_authz
 * filter it enables. Fail closed, as Istio: a provider that is unknown or cannot be reached, or two
 * providers for one workload, deny every request (an enforced DENY-all, added to `enforced`); on TCP
 * ports, where meshpilot has no external authorizer, the connections the rules match are denied.
 */
function compileCustom(
  model: MeshModel,
  policies: readonly AuthorizationPolicy[],
  protocol: PortProtocol,
  s: Settings,
  diagnostics: PolicyDiagnostic[],
  enforced: Record<RbacFilterAction, Record<string, EnvoyPolicy>>,
  present: Set<RbacFilterAction>,
): PolicyFilter[] {
  const denyAll = (p: AuthorizationPolicy, path: string, why: string) => {
    diagnostics.push(diagnosticAt(p, KIND, path, 'error', `${why}: denying every request to the selected workloads (fail closed)`));
    present.add('DENY');
    enforced.DENY[rbacPolicyName(p.namespace, p.name, 'bad-custom-action')] = DENY_ALL;
  };
  if (protocol === 'tcp') {
    for (const p of policies) {
      diagnostics.push(
        diagnosticAt(
          p,
          KIND,
          'spec.action',
          'warning',
          'CUSTOM on a TCP port is not supported by meshpilot: the connections its rules match are denied',
        ),
      );
      present.add('DENY');
      Object.assign(enforced.DENY, compilePolicy({ ...p, action: 'DENY' }, protocol, s, diagnostics));
    }
    return [];
  }
  const names = [...new Set(policies.map((p) => p.provider ?? ''))];
  if (names.length > 1) {
    for (const p of policies) denyAll(p, 'spec.provider.name', `one workload may use only one CUSTOM provider, got ${names.join(', ')}`);
    return [];
  }
  const provider = model.settings.extensionProviders.find((x) => x.name === names[0]);
  const resolved = provider ? resolveProvider(model, provider) : `no extensionProviders entry of the MeshConfig is named '${names[0]}'`;
  if (typeof resolved === 'string') {
    for (const p of policies) denyAll(p, 'spec.provider.name', `provider '${names[0]}' cannot be used: ${resolved}`);
    return [];
  }
  const rules: Record<string, EnvoyPolicy> = {};
  for (const p of policies) {
    for (const [name, policy] of Object.entries(compilePolicy(p, protocol, s, diagnostics))) rules[EXT_AUTHZ_POLICY_PREFIX + name] = policy;
  }
  const sorted = Object.fromEntries(Object.entries(rules).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const rbac: PolicyFilter = {
    name: HTTP_RBAC_FILTER,
    typedConfig: packAny(HTTP_RBAC_TYPE, HttpRbac, {
      shadowRules: { action: RbacAction.DENY, policies: sorted },
      shadowRulesStatPrefix: EXT_AUTHZ_SHADOW_STAT_PREFIX,
    }),
  };
  return [rbac, extAuthzFilter(resolved, HTTP_RBAC_FILTER)];
}

/** The stat prefixes of shadow (dry-run) rules by action, as Istio sets them: Envoy counts `<http prefix>rbac.<prefix>.shadow_allowed` and `.shadow_denied`. */
export const DRY_RUN_STAT_PREFIX: Readonly<Record<RbacFilterAction, string>> = {
  ALLOW: 'istio_dry_run_allow_',
  DENY: 'istio_dry_run_deny_',
  LOG: 'istio_dry_run_log_',
};

/**
 * Packs one RBAC filter with enforced `policies` and/or dry-run `shadowPolicies` (Envoy: rules
 * absent means no enforcement); each policy map is sorted by name so equal input gives equal bytes.
 */
export function rbacFilter(
  protocol: PortProtocol,
  action: RbacFilterAction,
  policies: Record<string, EnvoyPolicy> | undefined,
  shadowPolicies?: Record<string, EnvoyPolicy>,
): PolicyFilter {
  const sorted = (ps: Record<string, EnvoyPolicy>) =>
    Object.fromEntries(Object.entries(ps).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const config = {
    ...(policies ? { rules: { action: RbacAction[action], policies: sorted(policies) } } : {}),
    ...(shadowPolicies
      ? {
          shadowRules: { action: RbacAction[action], policies: sorted(shadowPolicies) },
          shadowRulesStatPrefix: DRY_RUN_STAT_PREFIX[action],
        }
      : {}),
  };
  if (protocol === 'http') return { name: HTTP_RBAC_FILTER, typedConfig: packAny(HTTP_RBAC_TYPE, HttpRbac, config) };
  return { name: NETWORK_RBAC_FILTER, typedConfig: packAny(NETWORK_RBAC_TYPE, NetworkRbac, { ...config, statPrefix: 'tcp.' }) };
}

/** A filter that denies every request or connection: what a workload gets when its policy cannot be compiled at all. */
export function denyAllFilter(protocol: PortProtocol, reason: string): PolicyFilter {
  return rbacFilter(protocol, 'DENY', { [`meshpilot-deny-all[${reason}]`]: DENY_ALL });
}
