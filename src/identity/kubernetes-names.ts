import { err, ok } from '../lib/index.js';
import type { Result } from '../lib/index.js';

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Checks a Kubernetes DNS-1123 label (namespaces): at most 63 lowercase alphanumerics or '-', alphanumeric at both ends. */
export function checkDns1123Label(s: string): Result<string, string> {
  if (s.length === 0) return err('must be a non-empty DNS-1123 label');
  if (s.length > 63) return err(`must be a DNS-1123 label of at most 63 characters (got ${s.length})`);
  if (!LABEL.test(s))
    return err(`must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit (got '${s}')`);
  return ok(s);
}

/** Checks a Kubernetes DNS-1123 subdomain (service account names): at most 253 characters, dot-separated DNS-1123 labels. */
export function checkDns1123Subdomain(s: string): Result<string, string> {
  if (s.length === 0) return err('must be a non-empty DNS-1123 subdomain');
  if (s.length > 253) return err(`must be a DNS-1123 subdomain of at most 253 characters (got ${s.length})`);
  // Kubernetes' subdomain regex: labels of [a-z0-9-] joined by '.', each starting and ending alphanumeric.
  for (const label of s.split('.')) {
    if (!LABEL.test(label)) {
      return err(
        `must be a DNS-1123 subdomain: dot-separated labels of lowercase letters, digits and '-', each starting and ending with a letter or digit (got '${s}')`,
      );
    }
  }
  return ok(s);
}
