import type { CertificateAuthority } from '../ca/index.js';
import type { TrustSource } from './authenticator.js';

/** Adapts a CA to what the authenticator checks client certificates against. */
export function trustSourceOf(ca: Pick<CertificateAuthority, 'status' | 'onChange'>): TrustSource {
  let cached: { issuers: readonly string[]; revoked: ReadonlySet<string> } | undefined;
  // The CA says when its bundle, CRL or signing CA changes; recompute only then.
  ca.onChange(() => {
    cached = undefined;
  });
  const current = () => {
    if (!cached) {
      const s = ca.status();
      cached = {
        issuers: [s.signingCa.pem, ...s.intermediates.map((c) => c.pem), ...s.roots.map((c) => c.pem)],
        revoked: new Set(s.revoked.map((r) => r.serialHex.toLowerCase().replace(/^0+/, ''))),
      };
    }
    return cached;
  };
  return { issuers: () => current().issuers, isRevoked: (serial) => current().revoked.has(serial) };
}
