// The path normalization the inbound HTTP connection manager applies before any filter runs, and
// the same steps in TypeScript, so `authz check` matches url_path against what RBAC sees.
// Envoy's order (ConnectionManagerUtility::maybeNormalizePath): escaped slashes (%2F, %5C) per
// path_with_escaped_slashes_action, then RFC 3986 normalization (normalize_path: Chromium's
// canonicalizer: `\` → `/`, unreserved escapes decoded, `.` and `..` segments removed), then
// merge_slashes. url_path excludes the query. A request target with a fragment (`#`) never gets
// that far: Envoy refuses it with 400 (RFC 3986 §3.5 keeps fragments out of request targets; the
// runtime guard envoy.reloadable_features.http_reject_path_with_fragment is on by default).
import { HttpConnectionManager_PathWithEscapedSlashesAction } from '../proto/index.js';

/** What the HCM does with %2F, %2f, %5C and %5c in a path. */
export type EscapedSlashesAction = 'REJECT_REQUEST' | 'UNESCAPE_AND_REDIRECT' | 'UNESCAPE_AND_FORWARD' | 'KEEP_UNCHANGED';

/** The HCM settings that path and host matching in RBAC rely on. */
export interface PathNormalization {
  readonly escapedSlashes: EscapedSlashesAction;
}

/** The settings meshpilot's inbound HCMs use: escaped slashes are refused (400), fail closed and unambiguous. */
export const INBOUND_PATH_NORMALIZATION: PathNormalization = { escapedSlashes: 'REJECT_REQUEST' };

/**
 * HttpConnectionManager fields every inbound HCM must set for the compiled RBAC to mean what the
 * policy says (spread into HttpConnectionManager.fromPartial): normalized paths with merged slashes,
 * escaped slashes refused, and the port stripped from `:authority` so hosts match without it.
 */
export const INBOUND_HCM_OPTIONS = {
  normalizePath: true,
  mergeSlashes: true,
  pathWithEscapedSlashesAction: HttpConnectionManager_PathWithEscapedSlashesAction[INBOUND_PATH_NORMALIZATION.escapedSlashes],
  stripAnyHostPort: true,
} as const;

/** The outcome of normalizing a request path as the HCM does. */
export type NormalizedPath =
  | { readonly kind: 'ok'; readonly path: string; readonly query: string }
  | { readonly kind: 'reject'; readonly reason: string }
  | { readonly kind: 'redirect'; readonly path: string; readonly query: string };

const ESCAPED_SLASH = /%(2f|5c)/gi;
const HAS_ESCAPED_SLASH = /%(2f|5c)/i;
const UNRESERVED = /[A-Za-z0-9\-._~]/;

// Chromium's path canonicalization as Envoy vendors it: decode escapes of unreserved characters,
// treat `\` as `/`, then remove dot segments (RFC 3986 §5.2.4); other escapes are kept as written.
function canonicalize(path: string): string {
  const decoded = path.replace(/%([0-9A-Fa-f]{2})/g, (all, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : all;
  });
  const slashed = decoded.replace(/\\/g, '/');
  const out: string[] = [];
  const segments = slashed.split('/');
  // segments[0] is '' for a path starting with '/'.
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (s === '.') {
      if (last) out.push('');
    } else if (s === '..') {
      out.pop();
      if (last) out.push('');
    } else out.push(s);
  }
  return '/' + out.join('/');
}

/** Normalizes a request path (`/a/../b?x=1`) as the inbound HCM does, or says why it is refused (`#`, escaped slashes). */
export function normalizeRequestPath(raw: string, n: PathNormalization = INBOUND_PATH_NORMALIZATION): NormalizedPath {
  // Envoy refuses a fragment outright (400), wherever it is; url_path ignores the query.
  if (raw.includes('#')) return { kind: 'reject', reason: `path '${raw}' has a fragment ('#'): refused with 400` };
  const q = raw.indexOf('?');
  let path = q >= 0 ? raw.slice(0, q) : raw;
  const query = q >= 0 ? raw.slice(q) : '';
  if (!path.startsWith('/')) return { kind: 'reject', reason: `path '${raw}' does not start with '/'` };
  let redirect = false;
  if (n.escapedSlashes !== 'KEEP_UNCHANGED' && HAS_ESCAPED_SLASH.test(path)) {
    if (n.escapedSlashes === 'REJECT_REQUEST')
      return { kind: 'reject', reason: `path '${raw}' has an escaped slash (%2F or %5C): refused with 400` };
    path = path.replace(ESCAPED_SLASH, (m) => (m.toLowerCase() === '%2f' ? '/' : '\\'));
    redirect = n.escapedSlashes === 'UNESCAPE_AND_REDIRECT';
  }
  path = canonicalize(path).replace(/\/{2,}/g, '/');
  return redirect ? { kind: 'redirect', path, query } : { kind: 'ok', path, query };
}

/** Strips a numeric port from a host as Envoy's strip_any_host_port does (IPv6 literals keep their brackets). */
export function stripHostPort(host: string): string {
  const colon = host.lastIndexOf(':');
  if (colon < 0) return host;
  const bracket = host.lastIndexOf(']');
  if (bracket >= 0 && bracket > colon) return host;
  const port = host.slice(colon + 1);
  return /^\d+$/.test(port) && Number(port) <= 0xffffffff ? host.slice(0, colon) : host;
}
