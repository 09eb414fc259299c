import { err, ok, unwrap } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import { checkDns1123Label, checkDns1123Subdomain } from './kubernetes-names.js';

/** A trust domain name that passed every rule of the SPIFFE ID specification (section 2.1). */
export type TrustDomain = string & { readonly __brand: 'TrustDomain' };

/** A SPIFFE ID (`spiffe://<trust-domain>/<path>`) that passed every rule of the SPIFFE ID specification. */
export type SpiffeId = string & { readonly __brand: 'SpiffeId' };

/** The rule a rejected SPIFFE ID, trust domain or workload identity broke: a closed union, so callers can map it. */
export type SpiffeIdRule =
  | 'empty'
  | 'scheme'
  | 'trust-domain-missing'
  | 'trust-domain-chars'
  | 'trust-domain-too-long'
  | 'port'
  | 'user-info'
  | 'query'
  | 'fragment'
  | 'empty-segment'
  | 'dot-segment'
  | 'segment-chars'
  | 'trailing-slash'
  | 'too-long'
  | 'workload-path'
  | 'namespace-dns1123-label'
  | 'service-account-dns1123-subdomain';

/** Why a string is not a valid SPIFFE ID: the rule broken and a message that names it. */
export interface SpiffeIdError {
  readonly rule: SpiffeIdRule;
  readonly message: string;
}

/** The workload parts of an Istio-style SPIFFE ID `spiffe://<td>/ns/<ns>/sa/<sa>`. */
export interface WorkloadIdentity {
  readonly trustDomain: TrustDomain;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** The trust domain used when the mesh config names none (Istio's default). */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local' as TrustDomain;

/** Maximum length of a trust domain name in bytes (SPIFFE ID spec 2.1). */
export const MAX_TRUST_DOMAIN_BYTES = 255;

/** Maximum length of a whole SPIFFE ID in bytes (SPIFFE ID spec 2.3). */
export const MAX_SPIFFE_ID_BYTES = 2048;

const SCHEME = 'spiffe://';
const TD_CHAR = /^[a-z0-9._-]$/;
const SEGMENT = /^[a-zA-Z0-9._-]+$/;

const fail = (rule: SpiffeIdRule, message: string): Result<never, SpiffeIdError> => err({ rule, message });

/** Parses a bare trust domain name (`example.org`), naming the rule it breaks when it is not valid. */
export function parseTrustDomain(s: string): Result<TrustDomain, SpiffeIdError> {
  if (s.length === 0) return fail('trust-domain-missing', 'trust domain is missing');
  if (s.startsWith(SCHEME)) return fail('trust-domain-chars', `a trust domain is a bare name, not a spiffe:// URI (got '${s}')`);
  return checkTrustDomain(s);
}

// SPIFFE ID spec 2.1: the trust domain is lowercase letters, digits, '.', '-' and '_' only, at most 255 bytes;
// it carries no port and no user info. Those two get their own rule names because they are common mistakes.
function checkTrustDomain(td: string): Result<TrustDomain, SpiffeIdError> {
  if (td.length === 0) return fail('trust-domain-missing', 'trust domain is missing');
  if (td.includes('@')) return fail('user-info', `trust domain must not contain user info (got '${td}')`);
  if (td.includes(':')) return fail('port', `trust domain must not contain a port (got '${td}')`);
  if (Buffer.byteLength(td, 'utf8') > MAX_TRUST_DOMAIN_BYTES) {
    return fail(
      'trust-domain-too-long',
      `trust domain must be at most ${MAX_TRUST_DOMAIN_BYTES} bytes (got ${Buffer.byteLength(td, 'utf8')})`,
    );
  }
  for (let i = 0; i < td.length; i++) {
    if (!TD_CHAR.test(td[i]!)) {
      return fail(
        'trust-domain-chars',
        `trust domain characters are limited to lowercase letters, digits, '.', '-' and '_' (got '${td[i]}' at offset ${i} in '${td}')`,
      );
    }
  }
  return ok(td as TrustDomain);
}

/** Parses `spiffe://<trust-domain>[/<path>]` by the SPIFFE ID specification, naming the rule broken on failure. */
export function parseSpiffeId(s: string): Result<SpiffeId, SpiffeIdError> {
  if (s.length === 0) return fail('empty', 'spiffe id is empty');
  if (!s.startsWith(SCHEME)) return fail('scheme', `spiffe id scheme must be 'spiffe://' (got '${s.slice(0, 16)}')`);
  if (Buffer.byteLength(s, 'utf8') > MAX_SPIFFE_ID_BYTES) {
    return fail('too-long', `spiffe id must be at most ${MAX_SPIFFE_ID_BYTES} bytes (got ${Buffer.byteLength(s, 'utf8')})`);
  }
  // Query and fragment are checked on the whole URI first so that '?' or '#' in the trust domain gets the right name.
  if (s.includes('?')) return fail('query', 'spiffe id must not contain a query');
  if (s.includes('#')) return fail('fragment', 'spiffe id must not contain a fragment');
  const rest = s.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const td = checkTrustDomain(slash < 0 ? rest : rest.slice(0, slash));
  if (!td.ok) return td;
  if (slash < 0) return ok(s as SpiffeId);
  const path = rest.slice(slash);
  // SPIFFE ID spec 2.2: segments are non-empty, not '.' or '..', [a-zA-Z0-9._-] only, and no trailing '/'.
  if (path.endsWith('/')) return fail('trailing-slash', 'spiffe id path must not end with a slash');
  const segments = path.slice(1).split('/');
  for (const seg of segments) {
    if (seg.length === 0) return fail('empty-segment', 'spiffe id path must not contain empty segments');
    if (seg === '.' || seg === '..') return fail('dot-segment', `spiffe id path must not contain '.' or '..' segments`);
    if (!SEGMENT.test(seg)) {
      return fail('segment-chars', `spiffe id path segment characters are limited to letters, digits, '.', '-' and '_' (got '${seg}')`);
    }
  }
  return ok(s as SpiffeId);
}

/** Returns the trust domain of a valid SPIFFE ID. */
export function trustDomainOf(id: SpiffeId): TrustDomain {
  const rest = id.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  return (slash < 0 ? rest : rest.slice(0, slash)) as TrustDomain;
}

/** Returns the path of a valid SPIFFE ID (`/ns/a/sa/b`), or '' for a trust domain's own ID. */
export function pathOf(id: SpiffeId): string {
  const rest = id.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  return slash < 0 ? '' : rest.slice(slash);
}

/** Formats `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`, checking the Kubernetes naming rules of both parts. */
export function workloadId(td: TrustDomain, namespace: string, serviceAccount: string): Result<SpiffeId, SpiffeIdError> {
  const ns = checkDns1123Label(namespace);
  if (!ns.ok) return fail('namespace-dns1123-label', `namespace ${ns.error}`);
  const sa = checkDns1123Subdomain(serviceAccount);
  if (!sa.ok) return fail('service-account-dns1123-subdomain', `service account ${sa.error}`);
  return parseSpiffeId(`${SCHEME}${td}/ns/${namespace}/sa/${serviceAccount}`);
}

/** Parses an Istio-style workload SPIFFE ID into trust domain, namespace and service account. */
export function parseWorkloadId(s: string): Result<WorkloadIdentity, SpiffeIdError> {
  const id = parseSpiffeId(s);
  if (!id.ok) return id;
  const segments = pathOf(id.value).split('/').slice(1);
  if (segments.length !== 4 || segments[0] !== 'ns' || segments[2] !== 'sa') {
    return fail('workload-path', `workload spiffe id path must be /ns/<namespace>/sa/<service-account> (got '${pathOf(id.value)}')`);
  }
  const [, namespace, , serviceAccount] = segments as [string, string, string, string];
  const ns = checkDns1123Label(namespace);
  if (!ns.ok) return fail('namespace-dns1123-label', `namespace ${ns.error}`);
  const sa = checkDns1123Subdomain(serviceAccount);
  if (!sa.ok) return fail('service-account-dns1123-subdomain', `service account ${sa.error}`);
  return ok({ trustDomain: trustDomainOf(id.value), namespace, serviceAccount });
}

/** Parses a SPIFFE ID literal or throws: for constants and tests only, never for input. */
export const mustSpiffeId = (s: string): SpiffeId => unwrap(parseSpiffeId(s));

/** Parses a trust domain literal or throws: for constants and tests only, never for input. */
export const mustTrustDomain = (s: string): TrustDomain => unwrap(parseTrustDomain(s));
