// Envoy matcher builders for Istio's match strings. Istio matches a string exactly, by prefix
// (`abc*`), by suffix (`*abc`) or by presence (`*`); we build Envoy StringMatchers with
// exact/prefix/suffix/contains and avoid regexes built from user input: Envoy refuses a RE2
// program larger than `re2.max_program_size.error_level` (100 by default), and an unescaped
// regex is a bypass (`ns/a/sa/x.y` must never match `ns/a/sa/xzy`).
import { isIP } from 'node:net';
import type { Result } from '../lib/index.js';
import type {
  CidrRange,
  DeepPartialLike,
  HeaderMatcher,
  MetadataMatcher,
  RbacPermission,
  RbacPrincipal,
  StringMatcher,
  ValueMatcher,
} from '../proto/index.js';

/** An Envoy RBAC Permission under construction. */
export type Permission = DeepPartialLike<RbacPermission>;
/** An Envoy RBAC Principal under construction. */
export type Principal = DeepPartialLike<RbacPrincipal>;
/** An Envoy StringMatcher under construction. */
export type StringMatch = DeepPartialLike<StringMatcher>;
/** An Envoy HeaderMatcher under construction. */
export type Header = DeepPartialLike<HeaderMatcher>;
/** An Envoy MetadataMatcher under construction. */
export type Metadata = DeepPartialLike<MetadataMatcher>;
/** An Envoy ValueMatcher under construction. */
export type Value = DeepPartialLike<ValueMatcher>;

/** The jwt_authn filter name: its dynamic metadata holds the verified JWT payload. */
export const JWT_FILTER = 'envoy.filters.http.jwt_authn';
/** The key under which every jwt_authn provider writes the verified payload (`payload_in_metadata`). */
export const JWT_PAYLOAD_KEY = 'payload';

/** How Istio matches a string, and the string without its `*`. */
export type Match =
  | { readonly kind: 'exact'; readonly text: string }
  | { readonly kind: 'prefix'; readonly text: string }
  | { readonly kind: 'suffix'; readonly text: string }
  | { readonly kind: 'any' };

/** Classifies an Istio match string; a `*` anywhere but at one end (or an empty string) is refused. */
export function parseMatch(s: string): Result<Match> {
  if (s === '') return { ok: false, error: 'must not be empty' };
  if (s === '*') return { ok: true, value: { kind: 'any' } };
  const stars = s.split('*').length - 1;
  if (stars === 0) return { ok: true, value: { kind: 'exact', text: s } };
  if (stars === 1 && s.endsWith('*')) return { ok: true, value: { kind: 'prefix', text: s.slice(0, -1) } };
  if (stars === 1 && s.startsWith('*')) return { ok: true, value: { kind: 'suffix', text: s.slice(1) } };
  return { ok: false, error: `'${s}' has a '*' in the middle: only exact, prefix ('abc*'), suffix ('*abc') or '*' are supported` };
}

/** Escapes a literal for RE2 (and JavaScript, which agrees on these escapes). */
export function escapeRegex(s: string): string {
  return s.replace(/[\\^$.|?*+()[\]{}-]/g, '\\$&');
}

/** A matcher for any non-empty string (Envoy refuses an empty prefix). */
export const NON_EMPTY: StringMatch = { safeRegex: { regex: '.+' } };

/** Builds the StringMatcher for an Istio match string, after a fixed `prefix` (e.g. `spiffe://`). */
export function stringMatch(m: Match, opts: { prefix?: string; ignoreCase?: boolean } = {}): StringMatch {
  const pre = opts.prefix ?? '';
  const ic = opts.ignoreCase ? { ignoreCase: true } : {};
  switch (m.kind) {
    case 'exact':
      return { exact: pre + m.text, ...ic };
    case 'prefix':
      return pre + m.text === '' ? NON_EMPTY : { prefix: pre + m.text, ...ic };
    case 'suffix':
      return { suffix: m.text, ...ic };
    case 'any':
      return pre === '' ? NON_EMPTY : { prefix: pre };
  }
}

/** One Permission that matches when every one of `rules` does (`any` when there are none). */
export function permAnd(rules: readonly Permission[]): Permission {
  if (rules.length === 0) return { any: true };
  if (rules.length === 1) return rules[0]!;
  return { andRules: { rules: [...rules] } };
}

/** One Permission that matches when any of `rules` does. */
export function permOr(rules: readonly Permission[]): Permission {
  return rules.length === 1 ? rules[0]! : { orRules: { rules: [...rules] } };
}

/** One Principal that matches when every one of `ids` does (`any` when there are none). */
export function idAnd(ids: readonly Principal[]): Principal {
  if (ids.length === 0) return { any: true };
  if (ids.length === 1) return ids[0]!;
  return { andIds: { ids: [...ids] } };
}

/** One Principal that matches when any of `ids` does. */
export function idOr(ids: readonly Principal[]): Principal {
  return ids.length === 1 ? ids[0]! : { orIds: { ids: [...ids] } };
}

/** A Principal that never matches. */
export const NO_ID: Principal = { notId: { any: true } };

/** A header matcher on a lowercased header name. */
export function header(name: string, m: Match, opts: { ignoreCase?: boolean } = {}): Header {
  if (m.kind === 'any') return { name: name.toLowerCase(), presentMatch: true };
  return { name: name.toLowerCase(), stringMatch: stringMatch(m, opts) };
}

/**
 * Matchers for a header that may have been sent several times. Envoy joins repeated headers with
 * `,` before matching (HeaderUtility::getAllOfHeaderAsString), so `x: a` + `x: evil` is seen as
 * `a,evil`. Where matching more is the safe side (a DENY rule, or a `notValues` of an ALLOW rule)
 * we also match each comma-separated element, so a second copy of the header cannot hide a value;
 * elsewhere the joined value is matched as Istio does, which fails closed.
 */
export function headerMatchers(name: string, m: Match, broaden: boolean): Header[] {
  const base = header(name, m);
  if (!broaden || m.kind === 'any') return [base];
  const n = name.toLowerCase();
  const sm = (s: StringMatch): Header => ({ name: n, stringMatch: s });
  const t = m.text;
  switch (m.kind) {
    case 'exact':
      return [
        base,
        sm({ prefix: `${t},` }),
        sm({ suffix: `,${t}` }),
        sm({ suffix: `, ${t}` }),
        sm({ contains: `,${t},` }),
        sm({ contains: `, ${t},` }),
      ];
    case 'prefix':
      return t === '' ? [base] : [base, sm({ contains: `,${t}` }), sm({ contains: `, ${t}` })];
    case 'suffix':
      return [base, sm({ contains: `${t},` })];
  }
}

/** A metadata matcher on the verified JWT payload, at `path` below it. */
export function jwtClaim(path: readonly string[], value: Value): Metadata {
  return { filter: JWT_FILTER, path: [JWT_PAYLOAD_KEY, ...path].map((key) => ({ key })), value };
}

/** A value matcher for a claim that may be a string or a list of strings (as `aud` and normalized `scope` are). */
export function stringOrListValue(m: Match): Value {
  if (m.kind === 'any') return { presentMatch: true };
  const s = stringMatch(m);
  return { orMatch: { valueMatchers: [{ listMatch: { oneOf: { stringMatch: s } } }, { stringMatch: s }] } };
}

/** Parses an IP address or CIDR into Envoy's CidrRange; host bits are allowed (Envoy masks them). */
export function parseCidr(s: string): Result<DeepPartialLike<CidrRange>> {
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) return { ok: false, error: `'${s}' is not an IP address or CIDR` };
  const max = family === 4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) return { ok: false, error: `'${s}': prefix length must be 0..${max}` };
    len = Number(p);
  }
  return { ok: true, value: { addressPrefix: addr, prefixLen: len } };
}

/** Parses a port string (digits, 1..65535). */
export function parsePort(s: string): Result<number> {
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) return { ok: false, error: `'${s}' is not a port number (1..65535)` };
  return { ok: true, value: Number(s) };
}
