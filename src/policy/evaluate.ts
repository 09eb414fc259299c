// An evaluator of the compiled filters a sidecar receives: it decodes the same typed configs that
// are pushed (jwt_authn, HTTP and network RBAC) and walks Envoy's RBAC Policy / Permission /
// Principal structures with Envoy's semantics, so `authz check` and the proxy cannot disagree
// about what a policy means. Path, host and header handling follow the inbound HCM.
import { BlockList, isIP } from 'node:net';
import {
  ExtAuthz,
  HttpRbac,
  JwtAuthentication,
  NetworkRbac,
  RbacAction,
  UriTemplateMatchConfig,
  type HeaderMatcher,
  type MetadataMatcher,
  type RbacConfig,
  type RbacPermission,
  type RbacPrincipal,
  type StringMatcher,
  type ValueMatcher,
  type CidrRange,
} from '../proto/index.js';
import { HTTP_RBAC_FILTER, NETWORK_RBAC_FILTER, parseRbacPolicyName, type PolicyFilter, type PortProtocol } from './authorization.js';
import { escapeRegex, JWT_FILTER, JWT_PAYLOAD_KEY } from './matchers.js';
import { EXT_AUTHZ_EFFECTIVE_POLICY_KEY, EXT_AUTHZ_FILTER, EXT_AUTHZ_POLICY_PREFIX, EXT_AUTHZ_SHADOW_STAT_PREFIX } from './ext-authz.js';
import { INBOUND_PATH_NORMALIZATION, normalizeRequestPath, stripHostPort, type PathNormalization } from './path-normalization.js';
import type { EffectiveMtlsMode } from './peer-authentication.js';

/** A JWT the caller presents, as the jwt_authn filter would see it once its signature checked out (or `invalid` when it did not). */
export interface JwtClaims {
  readonly iss: string;
  readonly sub?: string;
  readonly aud?: string | readonly string[];
  readonly azp?: string;
  /** Other claims of the payload. */
  readonly claims?: Readonly<Record<string, unknown>>;
}

/** One request (or, for TCP, one connection) to a workload port. */
export interface AuthzRequest {
  /** The caller's SPIFFE ID (its certificate's URI SAN); undefined for a plaintext caller. */
  readonly sourcePrincipal?: string;
  /** The peer address of the connection (direct_remote_ip). */
  readonly sourceIp?: string;
  /** The original client address (remote_ip); defaults to sourceIp. */
  readonly remoteIp?: string;
  /** The address the caller connected to; defaults to none (destination.ip rules do not match). */
  readonly destinationIp?: string;
  /** The port the caller connected to (the inbound listener's port). */
  readonly port: number;
  readonly method?: string;
  /** The request path as sent (`/a/../b?x=1`), before normalization. */
  readonly path?: string;
  /** The Host / `:authority`, with or without a port. */
  readonly host?: string;
  /** Request headers; a name given several times is joined with `,` as Envoy does. */
  readonly headers?: readonly (readonly [string, string])[];
  readonly jwt?: JwtClaims | 'invalid';
  /** The TLS SNI the caller sent. */
  readonly sni?: string;
}

/** The compiled inbound config of one workload port: what the sidecar gets, plus its mTLS mode. */
export interface InboundConfig {
  readonly protocol: PortProtocol;
  readonly httpFilters: readonly PolicyFilter[];
  readonly networkFilters: readonly PolicyFilter[];
  readonly mtlsMode?: EffectiveMtlsMode;
}

/** The verdict on one request, the policy and rule that decided it, and why. */
export interface Decision {
  readonly verdict: 'allow' | 'deny';
  /** The HTTP status the caller sees (200 when allowed; 400, 401 or 403 when not; 0 when the connection is refused). */
  readonly status: number;
  /** `namespace/name` of the AuthorizationPolicy that decided, when one did. */
  readonly policy?: string;
  /** The rule index within that policy (or `internal-error`). */
  readonly rule?: string;
  /** The Envoy policy name that decided. */
  readonly envoyPolicy?: string;
  readonly reason: string;
  /** Envoy policy names of AUDIT policies that matched (they do not change the verdict). */
  readonly audited: readonly string[];
  /** What dry-run (shadow) policies would have done, e.g. `would deny by foo/deny-path rule 0`; they do not change the verdict. */
  readonly dryRun: readonly string[];
  /** The path url_path rules were matched against, after normalization. */
  readonly normalizedPath?: string;
  /**
   * Set when a CUSTOM policy sends the request to an external authorizer first: which rule matched
   * and the authorizer's cluster. The verdict is then what follows if the authorizer allows.
   */
  readonly externalAuthz?: { readonly policy?: string; readonly rule?: string; readonly envoyPolicy: string; readonly cluster: string };
}

interface Ctx {
  readonly protocol: PortProtocol;
  readonly headers: ReadonlyMap<string, string>;
  readonly urlPath?: string;
  readonly principal?: string;
  readonly directRemoteIp?: string;
  readonly remoteIp?: string;
  readonly destinationIp?: string;
  readonly destinationPort: number;
  readonly sni?: string;
  readonly metadata: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

// ---- matchers -----------------------------------------------------------------------------

const regexCache = new Map<string, RegExp>();

// Envoy's safe_regex is RE2 with full-match semantics; the regexes we emit use only syntax RE2 and
// JavaScript read the same way (escapes, classes, `.*`, `+`, `?`, groups, and a leading `(?i)`).
function fullMatch(re: string, v: string): boolean {
  let r = regexCache.get(re);
  if (!r) {
    const ci = re.startsWith('(?i)');
    r = new RegExp(`^(?:${ci ? re.slice(4) : re})$`, ci ? 'si' : 's');
    regexCache.set(re, r);
  }
  return r.test(v);
}

/** Matches a string as Envoy's StringMatcher does. */
export function matchString(m: StringMatcher | undefined, v: string): boolean {
  if (!m) return false;
  const fold = (s: string) => (m.ignoreCase ? s.toLowerCase() : s);
  if (m.exact !== undefined) return fold(v) === fold(m.exact);
  if (m.prefix !== undefined) return fold(v).startsWith(fold(m.prefix));
  if (m.suffix !== undefined) return fold(v).endsWith(fold(m.suffix));
  if (m.contains !== undefined) return fold(v).includes(fold(m.contains));
  if (m.safeRegex !== undefined) return fullMatch(m.safeRegex.regex, v);
  return false;
}

function matchHeader(h: HeaderMatcher, ctx: Ctx): boolean {
  const value = ctx.headers.get(h.name.toLowerCase());
  if (value === undefined && !h.treatMissingHeaderAsEmpty) {
    // Envoy (HeaderUtility::matchHeaders): a missing header matches only `present_match: false`.
    const isPresent = h.presentMatch !== undefined;
    return h.invertMatch ? isPresent && h.presentMatch === true : isPresent && h.presentMatch === false;
  }
  const v = value ?? '';
  let match: boolean;
  if (h.presentMatch !== undefined) match = h.presentMatch;
  else if (h.exactMatch !== undefined) match = v === h.exactMatch;
  else if (h.prefixMatch !== undefined) match = v.startsWith(h.prefixMatch);
  else if (h.suffixMatch !== undefined) match = v.endsWith(h.suffixMatch);
  else if (h.containsMatch !== undefined) match = v.includes(h.containsMatch);
  else if (h.safeRegexMatch !== undefined) match = fullMatch(h.safeRegexMatch.regex, v);
  else if (h.stringMatch !== undefined) match = matchString(h.stringMatch, v);
  else match = false;
  return match !== h.invertMatch;
}

function matchValue(m: ValueMatcher, v: unknown): boolean {
  if (m.nullMatch !== undefined) return v === null;
  if (m.stringMatch !== undefined) return typeof v === 'string' && matchString(m.stringMatch, v);
  if (m.boolMatch !== undefined) return v === m.boolMatch;
  if (m.presentMatch !== undefined) return m.presentMatch && v !== undefined;
  if (m.listMatch !== undefined)
    return Array.isArray(v) && m.listMatch.oneOf !== undefined && v.some((x) => matchValue(m.listMatch!.oneOf!, x));
  if (m.orMatch !== undefined) return m.orMatch.valueMatchers.some((x) => matchValue(x, v));
  if (m.doubleMatch !== undefined) {
    if (typeof v !== 'number') return false;
    const d = m.doubleMatch;
    if (d.exact !== undefined) return v === d.exact;
    if (d.range !== undefined) return v >= d.range.start && v < d.range.end;
  }
  return false;
}

function matchMetadata(m: MetadataMatcher, ctx: Ctx): boolean {
  let v: unknown = ctx.metadata[m.filter];
  for (const seg of m.path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || seg.key === undefined) {
      v = undefined;
      break;
    }
    v = (v as Record<string, unknown>)[seg.key];
  }
  return (m.value !== undefined && matchValue(m.value, v)) !== m.invert;
}

function inCidr(c: CidrRange | undefined, ip: string | undefined): boolean {
  if (!c || !ip) return false;
  const fam = isIP(c.addressPrefix);
  const ipFam = isIP(ip);
  if (fam === 0 || ipFam !== fam) return false;
  const list = new BlockList();
  const type = fam === 4 ? 'ipv4' : 'ipv6';
  list.addSubnet(c.addressPrefix, c.prefixLen ?? (fam === 4 ? 32 : 128), type);
  return list.check(ip, type);
}

function matchPermission(p: RbacPermission, ctx: Ctx): boolean {
  if (p.andRules) return p.andRules.rules.every((r) => matchPermission(r, ctx));
  if (p.orRules) return p.orRules.rules.some((r) => matchPermission(r, ctx));
  if (p.any !== undefined) return p.any;
  if (p.header) return ctx.protocol === 'http' && matchHeader(p.header, ctx);
  if (p.urlPath) return ctx.urlPath !== undefined && matchString(p.urlPath.path, ctx.urlPath);
  if (p.destinationIp) return inCidr(p.destinationIp, ctx.destinationIp);
  if (p.destinationPort !== undefined) return p.destinationPort === ctx.destinationPort;
  if (p.destinationPortRange)
    return ctx.destinationPort >= p.destinationPortRange.start && ctx.destinationPort < p.destinationPortRange.end;
  if (p.metadata) return matchMetadata(p.metadata, ctx);
  if (p.notRule) return !matchPermission(p.notRule, ctx);
  if (p.requestedServerName) return matchString(p.requestedServerName, ctx.sni ?? '');
  if (p.uriTemplate) return ctx.urlPath !== undefined && matchUriTemplate(p.uriTemplate.typedConfig?.value, ctx.urlPath);
  return false;
}

// Envoy's URI template matcher (extensions/path/match/uri_template): `*` is one segment of pchars,
// `**` any run of pchars and `/`; the template must match the whole path (query already stripped).
const PCHAR = "[A-Za-z0-9\\-._~%!$&'()+,;:@=]";
function matchUriTemplate(config: Uint8Array | undefined, path: string): boolean {
  if (!config) return false;
  const template = UriTemplateMatchConfig.decode(config).pathTemplate;
  const re = template
    .split('/')
    .map((seg) => (seg === '**' ? `${PCHAR.slice(0, -1)}/]*` : seg === '*' ? `${PCHAR}+` : escapeRegex(seg)))
    .join('/');
  return fullMatch(re, path);
}

function matchPrincipal(p: RbacPrincipal, ctx: Ctx): boolean {
  if (p.andIds) return p.andIds.ids.every((r) => matchPrincipal(r, ctx));
  if (p.orIds) return p.orIds.ids.some((r) => matchPrincipal(r, ctx));
  if (p.any !== undefined) return p.any;
  if (p.authenticated) {
    // Envoy: no TLS peer, no match; without a principal_name, any authenticated peer matches.
    if (ctx.principal === undefined) return false;
    return p.authenticated.principalName === undefined || matchString(p.authenticated.principalName, ctx.principal);
  }
  if (p.sourceIp) return inCidr(p.sourceIp, ctx.directRemoteIp);
  if (p.directRemoteIp) return inCidr(p.directRemoteIp, ctx.directRemoteIp);
  if (p.remoteIp) return inCidr(p.remoteIp, ctx.remoteIp);
  if (p.header) return ctx.protocol === 'http' && matchHeader(p.header, ctx);
  if (p.urlPath) return ctx.urlPath !== undefined && matchString(p.urlPath.path, ctx.urlPath);
  if (p.metadata) return matchMetadata(p.metadata, ctx);
  if (p.notId) return !matchPrincipal(p.notId, ctx);
  return false;
}

/** The name of the first policy (in Envoy's lexicographic order) that matches, if any. */
function firstMatch(rules: RbacConfig, ctx: Ctx): string | undefined {
  for (const name of Object.keys(rules.policies).sort()) {
    const pol = rules.policies[name]!;
    if (pol.permissions.some((p) => matchPermission(p, ctx)) && pol.principals.some((p) => matchPrincipal(p, ctx))) return name;
  }
  return undefined;
}

// ---- jwt_authn ----------------------------------------------------------------------------

type JwtOutcome = { ok: true; payload?: Record<string, unknown> } | { ok: false; status: 401 | 403; reason: string };

function runJwtAuthn(filter: PolicyFilter, jwt: AuthzRequest['jwt']): JwtOutcome {
  const cfg = JwtAuthentication.decode(filter.typedConfig.value);
  if (jwt === undefined) return { ok: true };
  if (jwt === 'invalid')
    return { ok: false, status: 401, reason: 'the token does not verify (signature, algorithm, key, expiry or not-before)' };
  const providers = Object.values(cfg.providers).filter((p) => p.issuer === jwt.iss);
  if (providers.length === 0) return { ok: false, status: 401, reason: `no jwtRule accepts tokens from issuer '${jwt.iss}'` };
  const auds = jwt.aud === undefined ? [] : typeof jwt.aud === 'string' ? [jwt.aud] : [...jwt.aud];
  const provider = providers.find((p) => p.audiences.length === 0 || p.audiences.some((a) => auds.includes(a)));
  // Envoy answers this one (Status::JwtAudienceNotAllowed) with 403, every other token failure with 401.
  if (!provider)
    return {
      ok: false,
      status: 403,
      reason: `the token's audience (${auds.join(', ') || 'none'}) is not one the issuer's jwtRule accepts`,
    };
  const payload: Record<string, unknown> = { ...jwt.claims, iss: jwt.iss };
  if (jwt.sub !== undefined) payload.sub = jwt.sub;
  if (jwt.aud !== undefined) payload.aud = jwt.aud;
  if (jwt.azp !== undefined) payload.azp = jwt.azp;
  // normalize_payload_in_metadata: space-delimited claims (scopes) become lists.
  for (const claim of provider.normalizePayloadInMetadata?.spaceDelimitedClaims ?? []) {
    const v = payload[claim];
    if (typeof v === 'string') payload[claim] = v.split(' ').filter((s) => s !== '');
  }
  return { ok: true, payload };
}

// ---- the chain ----------------------------------------------------------------------------

function joinHeaders(req: AuthzRequest, host: string | undefined, path: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of req.headers ?? []) {
    const name = k.toLowerCase();
    if (name === 'host' || name.startsWith(':')) continue; // pseudo-headers come from the request line
    const prev = out.get(name);
    // Envoy joins repeated headers with ',' before matching (HeaderUtility::getAllOfHeaderAsString).
    out.set(name, prev === undefined ? v : `${prev},${v}`);
  }
  if (req.method !== undefined) out.set(':method', req.method);
  if (host !== undefined) out.set(':authority', host);
  if (path !== undefined) out.set(':path', path);
  return out;
}

/** What one shadow engine would have decided, in `authz check` words. */
function shadowResult(rules: RbacConfig, ctx: Ctx): string[] {
  const hit = firstMatch(rules, ctx);
  const by = (h: string) => `${where(h).policy ?? h} rule ${where(h).rule ?? '?'}`;
  if (rules.action === RbacAction.DENY) return hit ? [`would deny by ${by(hit)}`] : [];
  if (rules.action === RbacAction.ALLOW) return [hit ? `would allow by ${by(hit)}` : 'would deny: no dry-run ALLOW policy matches'];
  return hit ? [`would audit by ${by(hit)}`] : [];
}

const where = (envoyPolicy: string): Pick<Decision, 'policy' | 'rule' | 'envoyPolicy'> => {
  const p = parseRbacPolicyName(envoyPolicy);
  return p ? { policy: `${p.namespace}/${p.name}`, rule: p.rule, envoyPolicy } : { envoyPolicy };
};

/**
 * Evaluates a request against the compiled inbound config of a workload port, as the sidecar
 * would: mTLS mode, path normalization, jwt_authn, then the RBAC filters in chain order.
 */
export function evaluate(config: InboundConfig, req: AuthzRequest, opts: { pathNormalization?: PathNormalization } = {}): Decision {
  const audited: string[] = [];
  const dryRun: string[] = [];
  let external: Decision['externalAuthz'];
  const deny = (status: number, reason: string, extra: Partial<Decision> = {}): Decision => ({
    verdict: 'deny',
    status,
    reason,
    audited,
    dryRun,
    ...(external ? { externalAuthz: external } : {}),
    ...extra,
  });
  let principal = req.sourcePrincipal;
  if (config.mtlsMode === 'STRICT' && principal === undefined)
    return deny(0, 'plaintext connection refused: the port requires mTLS (STRICT)');
  if (config.mtlsMode === 'DISABLE') principal = undefined; // no TLS on this port: no peer identity

  let urlPath: string | undefined;
  let fullPath: string | undefined;
  let note = '';
  if (config.protocol === 'http' && req.path !== undefined) {
    const n = normalizeRequestPath(req.path, opts.pathNormalization ?? INBOUND_PATH_NORMALIZATION);
    if (n.kind === 'reject') return deny(400, n.reason);
    if (n.kind === 'redirect') note = ` (after a redirect to ${n.path}${n.query})`;
    urlPath = n.path;
    fullPath = n.path + n.query;
  }
  const host = config.protocol === 'http' && req.host !== undefined ? stripHostPort(req.host) : undefined;
  const metadata: Record<string, Record<string, unknown>> = {};
  const ctx: Ctx = {
    protocol: config.protocol,
    headers: config.protocol === 'http' ? joinHeaders(req, host, fullPath) : new Map(),
    ...(urlPath !== undefined ? { urlPath } : {}),
    ...(principal !== undefined ? { principal } : {}),
    ...(req.sourceIp !== undefined ? { directRemoteIp: req.sourceIp } : {}),
    ...((req.remoteIp ?? req.sourceIp) !== undefined ? { remoteIp: req.remoteIp ?? req.sourceIp } : {}),
    ...(req.destinationIp !== undefined ? { destinationIp: req.destinationIp } : {}),
    destinationPort: req.port,
    ...(req.sni !== undefined ? { sni: req.sni } : {}),
    metadata,
  };
  const withPath = urlPath !== undefined ? { normalizedPath: urlPath } : {};

  let allowedBy: string | undefined;
  let sawJwt = false;
  const filters = config.protocol === 'http' ? config.httpFilters : config.networkFilters;
  for (const f of filters) {
    if (f.name === JWT_FILTER) {
      sawJwt = true;
      const r = runJwtAuthn(f, req.jwt);
      if (!r.ok) return deny(r.status, `jwt_authn: ${r.reason}`, withPath);
      if (r.payload) metadata[JWT_FILTER] = { [JWT_PAYLOAD_KEY]: r.payload };
      continue;
    }
    if (f.name === EXT_AUTHZ_FILTER) {
      // Enabled by the CUSTOM shadow RBAC filter's metadata (filter_enabled_metadata), as in Envoy.
      const cfg = ExtAuthz.decode(f.typedConfig.value);
      const m = cfg.filterEnabledMetadata;
      const enabled = m === undefined || matchMetadata(m, ctx);
      const id = metadata[HTTP_RBAC_FILTER]?.[EXT_AUTHZ_EFFECTIVE_POLICY_KEY];
      if (enabled && typeof id === 'string') {
        const cluster = cfg.grpcService?.envoyGrpc?.clusterName ?? cfg.httpService?.serverUri?.cluster ?? '';
        external = { ...where(id.slice(EXT_AUTHZ_POLICY_PREFIX.length)), envoyPolicy: id, cluster };
      }
      continue;
    }
    if (f.name !== HTTP_RBAC_FILTER && f.name !== NETWORK_RBAC_FILTER) continue;
    const c = f.name === HTTP_RBAC_FILTER ? HttpRbac.decode(f.typedConfig.value) : NetworkRbac.decode(f.typedConfig.value);
    if (c.shadowRulesStatPrefix === EXT_AUTHZ_SHADOW_STAT_PREFIX && c.shadowRules) {
      // CUSTOM rules: Envoy records the matching rule in the filter's dynamic metadata, nothing more.
      const hit = firstMatch(c.shadowRules, ctx);
      if (hit) metadata[HTTP_RBAC_FILTER] = { ...metadata[HTTP_RBAC_FILTER], [EXT_AUTHZ_EFFECTIVE_POLICY_KEY]: hit };
      continue;
    }
    // Envoy runs the shadow engine first and only records its result (stats, dynamic metadata).
    if (c.shadowRules) dryRun.push(...shadowResult(c.shadowRules, ctx));
    const rules = c.rules;
    if (!rules) continue;
    const hit = firstMatch(rules, ctx);
    if (rules.action === RbacAction.LOG) {
      if (hit) audited.push(hit);
    } else if (rules.action === RbacAction.DENY) {
      if (hit)
        return deny(403, `denied by DENY policy ${where(hit).policy ?? hit} rule ${where(hit).rule ?? '?'}${note}`, {
          ...where(hit),
          ...withPath,
        });
    } else if (rules.action === RbacAction.ALLOW) {
      if (!hit)
        return deny(
          403,
          `no ALLOW policy matches${note}: with ALLOW policies selecting a workload, anything they do not allow is denied`,
          withPath,
        );
      allowedBy ??= hit;
    }
  }
  const jwtNote = req.jwt !== undefined && !sawJwt ? ' (the token was ignored: no RequestAuthentication applies)' : '';
  if (allowedBy)
    return {
      verdict: 'allow',
      status: 200,
      reason: `allowed by ALLOW policy ${where(allowedBy).policy ?? allowedBy} rule ${where(allowedBy).rule ?? '?'}${note}${jwtNote}`,
      audited,
      dryRun,
      ...where(allowedBy),
      ...withPath,
      ...(external ? { externalAuthz: external } : {}),
    };
  return {
    verdict: 'allow',
    status: 200,
    reason: `no policy denies it and no ALLOW policy applies${note}${jwtNote}`,
    audited,
    dryRun,
    ...withPath,
    ...(external ? { externalAuthz: external } : {}),
  };
}
