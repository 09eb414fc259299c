/** When a certificate should be renewed, as a fraction of its lifetime. */
export interface RenewalPolicy {
  /** Renew at this fraction of the lifetime (Istio and SPIFFE agents use one half). */
  readonly atFraction: number;
  /** Bring renewal forward by a random amount of up to this fraction of the lifetime, so certificates issued together do not renew together. */
  readonly jitterFraction: number;
}

/** Returns the time to renew a certificate valid from `notBefore` to `notAfter`, given a random number in [0, 1). */
export function renewalTime(
  validity: { readonly notBefore: number; readonly notAfter: number },
  policy: RenewalPolicy,
  random: number,
): number {
  const lifetime = validity.notAfter - validity.notBefore;
  const fraction = Math.max(0.05, policy.atFraction - policy.jitterFraction * random);
  return validity.notBefore + lifetime * fraction;
}
