// Checks what the CA returned before the agent serves it: a chain that is not for our
// key, not for our identity, not valid now, or not anchored in a root it carries would
// break the local Envoy (or worse, quietly serve someone else's identity).
import { X509Certificate, type KeyObject } from 'node:crypto';
import type { SpiffeId } from '../identity/index.js';
import { err, ok, type Result } from '../lib/index.js';

/** An SVID the agent holds: its chain (leaf first, no roots), key, roots, and validity. */
export interface AgentSvid {
  readonly spiffeId: SpiffeId;
  /** Leaf then intermediates, PEM, concatenated: Envoy's certificate_chain. */
  readonly chainPem: string;
  readonly keyPem: string;
  /** The trust bundle taken from the response: its self-signed certificates, PEM, concatenated. */
  readonly rootsPem: string;
  readonly serialHex: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

const normalize = (pem: string) => pem.trim() + '\n';

/**
 * Checks an Istio CreateCertificate response (leaf first, root(s) last) against the key
 * and identity asked for, at time `now`, and splits it into the served chain and the roots.
 */
export function acceptChain(
  chain: readonly string[],
  want: { readonly spiffeId: SpiffeId; readonly publicKey: KeyObject; readonly keyPem: string; readonly now: number },
): Result<AgentSvid> {
  if (chain.length < 2) return err(`response holds ${chain.length} certificates; expected the leaf and at least one root`);
  let certs: X509Certificate[];
  try {
    // A response entry may itself hold several PEM blocks; Istio sends one per entry.
    certs = chain
      .flatMap((p) => p.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [])
      .map((p) => new X509Certificate(p));
  } catch (e) {
    return err(`response certificate does not parse: ${(e as Error).message}`);
  }
  if (certs.length < 2) return err('response holds no PEM certificates beyond the leaf');
  const [leaf, ...rest] = certs as [X509Certificate, ...X509Certificate[]];
  if (!leaf.publicKey.equals(want.publicKey)) return err('leaf certificate is not for the key the CSR carried');
  if (leaf.subjectAltName !== `URI:${want.spiffeId}`)
    return err(`leaf certificate names ${leaf.subjectAltName ?? 'nothing'}, not ${want.spiffeId}`);
  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  if (!(notBefore <= want.now && want.now < notAfter))
    return err(`leaf certificate is not valid now (${leaf.validFrom} .. ${leaf.validTo})`);
  const isRoot = (c: X509Certificate) => c.ca && c.checkIssued(c) && c.verify(c.publicKey);
  const roots = rest.filter(isRoot);
  const intermediates = rest.filter((c) => !isRoot(c));
  if (roots.length === 0) return err('response carries no root certificate');
  // Each certificate is signed by the next; the last non-root by one of the roots.
  const path = [leaf, ...intermediates];
  for (let i = 0; i < path.length; i++) {
    const c = path[i]!;
    const issuers = i + 1 < path.length ? [path[i + 1]!] : roots;
    if (!issuers.some((iss) => c.checkIssued(iss) && c.verify(iss.publicKey)))
      return err(
        `certificate ${i} of the chain (${c.subject}) is not signed by ${i + 1 < path.length ? 'the next one' : 'a root in the response'}`,
      );
  }
  return ok({
    spiffeId: want.spiffeId,
    chainPem: path.map((c) => normalize(c.toString())).join(''),
    keyPem: want.keyPem,
    rootsPem: roots.map((c) => normalize(c.toString())).join(''),
    serialHex: leaf.serialNumber.toLowerCase().replace(/^0+/, ''),
    notBefore,
    notAfter,
  });
}
