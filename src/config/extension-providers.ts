// MeshConfig `extensionProviders` (Istio mesh/v1alpha1 config.proto, ExtensionProvider): the
// external authorizers CUSTOM AuthorizationPolicies name. An authorizer entry that cannot be read is
// an error, so a CUSTOM policy naming it fails closed; telemetry providers are ignored with a warning.
import { parseDuration, type ExtAuthzBodySettings, type ExtAuthzProvider } from '../model/index.js';
import { checkDns1123Subdomain, checkHttpHeaderName } from './names.js';
import type { DocReader, Field } from './yaml-reader.js';

// Provider kinds of Istio's ExtensionProvider that only shape telemetry: meshpilot configures none.
const TELEMETRY_PROVIDERS = [
  'zipkin',
  'lightstep',
  'datadog',
  'stackdriver',
  'opencensus',
  'skywalking',
  'opentelemetry',
  'prometheus',
  'envoyFileAccessLog',
  'envoyHttpAls',
  'envoyTcpAls',
  'envoyOtelAls',
  'sds',
] as const;

const COMMON = ['service', 'port', 'timeout', 'failOpen', 'statusOnError', 'clearRouteCache', 'includeRequestBodyInCheck'];
const HTTP_ONLY = [
  'pathPrefix',
  'includeRequestHeadersInCheck',
  'includeAdditionalHeadersInCheck',
  'headersToUpstreamOnAllow',
  'headersToDownstreamOnDeny',
  'headersToDownstreamOnAllow',
];
const HTTP_UNSUPPORTED = {
  includeHeadersInCheck: 'deprecated in Istio: use includeRequestHeadersInCheck',
  headersToUpstreamOnAllowPrefixes: 'not supported by meshpilot: list the headers in headersToUpstreamOnAllow',
};

/** Istio's default timeout of an external authorizer call. */
export const DEFAULT_EXT_AUTHZ_TIMEOUT_MS = 600_000;

/** A number written as a YAML number or as a string of digits (Istio's JSON accepts both), else NaN. */
function numberOf(f: Field): number {
  const v = (f.node as { value?: unknown }).value;
  return typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
}

function readPort(r: DocReader, f: Field): number | undefined {
  // Istio's port is a uint32; YAML written for Istio often quotes it ("9000").
  const raw = numberOf(f);
  if (!Number.isInteger(raw) || raw < 1 || raw > 65535) {
    r.error(f.at, f.path, `must be a port number between 1 and 65535`);
    return undefined;
  }
  return raw;
}

function readHeaders(r: DocReader, f: Field): string[] {
  const out: string[] = [];
  for (const h of r.strList(f)) {
    const problem = checkHttpHeaderName(h.value);
    if (problem) r.error(h.field.at, h.field.path, problem);
    else out.push(h.value.toLowerCase());
  }
  return out;
}

function readBody(r: DocReader, f: Field): ExtAuthzBodySettings | undefined {
  const m = r.map(f, ['maxRequestBytes', 'allowPartialMessage', 'packAsBytes']);
  if (!m) return undefined;
  const max = m.maxRequestBytes ? r.int(m.maxRequestBytes) : undefined;
  if (max !== undefined && max < 1) r.error(m.maxRequestBytes!.at, m.maxRequestBytes!.path, 'must be positive');
  return {
    // Istio's default when the field is absent.
    maxRequestBytes: max !== undefined && max > 0 ? max : 1_000_000,
    allowPartialMessage: (m.allowPartialMessage && r.bool(m.allowPartialMessage)) ?? false,
    packAsBytes: (m.packAsBytes && r.bool(m.packAsBytes)) ?? false,
  };
}

// Istio's `service` is `[<namespace>/]<hostname>`; the namespace part only narrows the lookup.
function readService(r: DocReader, f: Field): string | undefined {
  const s = r.nonEmptyStr(f);
  if (s === undefined) return undefined;
  const slash = s.indexOf('/');
  const host = slash >= 0 ? s.slice(slash + 1) : s;
  const problem = checkDns1123Subdomain(host);
  if (problem) {
    r.error(f.at, f.path, `'${s}' is not [<namespace>/]<hostname>: ${problem}`);
    return undefined;
  }
  return host;
}

function readAuthorizer(r: DocReader, name: string, kind: 'http' | 'grpc', f: Field): ExtAuthzProvider | undefined {
  const m = r.map(f, kind === 'http' ? [...COMMON, ...HTTP_ONLY] : COMMON, kind === 'http' ? HTTP_UNSUPPORTED : {});
  if (!m) return undefined;
  let ok = true;
  for (const k of ['service', 'port'] as const)
    if (!m[k]) {
      r.error(f.at, `${f.path}.${k}`, 'required');
      ok = false;
    }
  const service = m.service ? readService(r, m.service) : undefined;
  const port = m.port ? readPort(r, m.port) : undefined;
  let timeoutMs = DEFAULT_EXT_AUTHZ_TIMEOUT_MS;
  if (m.timeout) {
    const s = r.str(m.timeout, ' (write a duration such as 1s)');
    const d = s !== undefined ? parseDuration(s) : undefined;
    if (d && !d.ok) r.error(m.timeout.at, m.timeout.path, d.error);
    else if (d && d.value <= 0) r.error(m.timeout.at, m.timeout.path, `must be positive, got ${s}`);
    else if (d) timeoutMs = d.value;
  }
  let statusOnError = 403;
  if (m.statusOnError) {
    // Istio writes it as a string ("503").
    const v = numberOf(m.statusOnError);
    if (!Number.isInteger(v) || v < 200 || v > 599)
      r.error(m.statusOnError.at, m.statusOnError.path, 'must be an HTTP status code (200-599)');
    else statusOnError = v;
  }
  const additional: Record<string, string> = {};
  for (const e of m.includeAdditionalHeadersInCheck ? (r.entries(m.includeAdditionalHeadersInCheck) ?? []) : []) {
    const problem = checkHttpHeaderName(e.key);
    const v = r.str(e.value);
    if (problem) r.error(e.keyAt, e.value.path, problem);
    else if (v !== undefined) additional[e.key.toLowerCase()] = v;
  }
  let pathPrefix: string | undefined;
  if (m.pathPrefix) {
    pathPrefix = r.str(m.pathPrefix);
    if (pathPrefix !== undefined && !pathPrefix.startsWith('/')) {
      r.error(m.pathPrefix.at, m.pathPrefix.path, `must start with '/', got '${pathPrefix}'`);
      pathPrefix = undefined;
    }
  }
  const body = m.includeRequestBodyInCheck ? readBody(r, m.includeRequestBodyInCheck) : undefined;
  if (!ok || service === undefined || port === undefined) return undefined;
  return {
    name,
    kind,
    service,
    port,
    timeoutMs,
    failOpen: (m.failOpen && r.bool(m.failOpen)) ?? false,
    statusOnError,
    clearRouteCache: (m.clearRouteCache && r.bool(m.clearRouteCache)) ?? false,
    ...(body ? { includeRequestBodyInCheck: body } : {}),
    ...(pathPrefix ? { pathPrefix } : {}),
    includeRequestHeadersInCheck: m.includeRequestHeadersInCheck ? readHeaders(r, m.includeRequestHeadersInCheck) : [],
    includeAdditionalHeadersInCheck: additional,
    headersToUpstreamOnAllow: m.headersToUpstreamOnAllow ? readHeaders(r, m.headersToUpstreamOnAllow) : [],
    headersToDownstreamOnDeny: m.headersToDownstreamOnDeny ? readHeaders(r, m.headersToDownstreamOnDeny) : [],
    headersToDownstreamOnAllow: m.headersToDownstreamOnAllow ? readHeaders(r, m.headersToDownstreamOnAllow) : [],
  };
}

/** Reads `extensionProviders`: the external authorizers (each name once), warning about telemetry providers it ignores. */
export function parseExtensionProviders(r: DocReader, f: Field): ExtAuthzProvider[] {
  const out: ExtAuthzProvider[] = [];
  const names = new Set<string>();
  for (const item of r.list(f) ?? []) {
    const m = r.map(item, ['name', 'envoyExtAuthzHttp', 'envoyExtAuthzGrpc', ...TELEMETRY_PROVIDERS]);
    if (!m) continue;
    const name = m.name ? r.nonEmptyStr(m.name) : undefined;
    if (!m.name) r.error(item.at, `${item.path}.name`, 'required');
    if (name !== undefined) {
      if (names.has(name)) r.error(m.name!.at, m.name!.path, `duplicate provider name '${name}'`);
      names.add(name);
    }
    const kinds = Object.keys(m).filter((k) => k !== 'name');
    if (kinds.length !== 1) {
      r.error(item.at, item.path, `exactly one provider kind must be set, got ${kinds.length === 0 ? 'none' : kinds.join(', ')}`);
      continue;
    }
    const kind = kinds[0]!;
    if (kind !== 'envoyExtAuthzHttp' && kind !== 'envoyExtAuthzGrpc') {
      r.warn(
        m[kind]!.at,
        m[kind]!.path,
        `valid Istio extension provider '${kind}', ignored by meshpilot: meshpilot configures no telemetry`,
      );
      continue;
    }
    const p = readAuthorizer(r, name ?? '', kind === 'envoyExtAuthzHttp' ? 'http' : 'grpc', m[kind]!);
    if (p && name !== undefined) out.push(p);
  }
  return out;
}
