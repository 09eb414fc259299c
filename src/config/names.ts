// Kubernetes name and label syntax (k8s.io/apimachinery/pkg/util/validation), and IP/CIDR literals.
// Each check returns the rule broken, or undefined when the value is valid.
import { isIP } from 'node:net';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** Checks a DNS-1123 label (namespaces): lowercase alphanumerics and '-', at most 63 characters. */
export function checkDns1123Label(s: string): string | undefined {
  if (s.length > 63) return `'${s}' is longer than 63 characters (DNS-1123 label)`;
  if (!DNS1123_LABEL.test(s))
    return `'${s}' is not a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit`;
  return undefined;
}

/** Checks a DNS-1035 label (Service names): like DNS-1123 but starting with a letter. */
export function checkDns1035Label(s: string): string | undefined {
  if (s.length > 63) return `'${s}' is longer than 63 characters (DNS-1035 label)`;
  if (!DNS1035_LABEL.test(s)) return `'${s}' is not a DNS-1035 label: lowercase letters, digits and '-', starting with a letter`;
  return undefined;
}

/** Checks a DNS-1123 subdomain (most object names): dot-separated DNS-1123 labels, at most 253 characters. */
export function checkDns1123Subdomain(s: string): string | undefined {
  if (s.length > 253) return `'${s}' is longer than 253 characters (DNS-1123 subdomain)`;
  if (!DNS1123_SUBDOMAIN.test(s))
    return `'${s}' is not a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit`;
  return undefined;
}

/** Checks a label (or annotation) key: an optional DNS subdomain prefix and '/', then a name of at most 63 characters. */
export function checkLabelKey(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined) {
    if (prefix === '') return `label key '${key}' has an empty prefix`;
    if (checkDns1123Subdomain(prefix)) return `label key '${key}' has a prefix that is not a DNS-1123 subdomain`;
  }
  if (name.length === 0 || name.length > 63) return `label key '${key}' must have a name of 1 to 63 characters`;
  if (!LABEL_NAME.test(name))
    return `label key '${key}' must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric (optionally prefixed by a DNS subdomain and '/')`;
  return undefined;
}

/** Checks a label value: empty, or at most 63 alphanumerics, '-', '_', '.', starting and ending with an alphanumeric. */
export function checkLabelValue(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 63) return `label value '${value}' is longer than 63 characters`;
  if (!LABEL_NAME.test(value))
    return `label value '${value}' must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric`;
  return undefined;
}

/** Checks a port number (1–65535). */
export function checkPort(n: number): string | undefined {
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? undefined : `port ${n} is out of range (1-65535)`;
}

/** Checks an IP literal or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`). */
export function checkIpOrCidr(s: string): string | undefined {
  const slash = s.indexOf('/');
  const addr = slash >= 0 ? s.slice(0, slash) : s;
  const family = isIP(addr);
  if (family === 0) return `'${s}' is not an IP address or CIDR block`;
  if (slash >= 0) {
    const len = s.slice(slash + 1);
    const max = family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(len) || Number(len) > max) return `'${s}' has an invalid prefix length (0-${max})`;
  }
  return undefined;
}

/** Checks a trust domain name: lowercase letters, digits, '.', '-' and '_' (SPIFFE ID specification, section 2.1). */
export function checkTrustDomain(s: string): string | undefined {
  if (s === '') return 'trust domain must not be empty';
  if (s.length > 255) return `trust domain '${s}' is longer than 255 characters`;
  if (!/^[a-z0-9._-]+$/.test(s)) return `trust domain '${s}' may contain only lowercase letters, digits, '.', '-' and '_'`;
  return undefined;
}

/** Returns why `s` is not an HTTP header name (RFC 9110 token), or undefined when it is one. */
export function checkHttpHeaderName(s: string): string | undefined {
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(s)) return `'${s}' is not an HTTP header name`;
  return undefined;
}
