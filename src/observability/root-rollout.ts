// Proof that a root rotation step reached the mesh, the gate between its phases: after prepare,
// every connected proxy ACKed an SDS version whose ROOTCA holds every root; after activate, every
// connected proxy ACKed one carrying its workload's SVID re-issued under the new signing CA.
// Judged by snapshot content and ACKed version, as the revocation proof is.
import { X509Certificate } from 'node:crypto';
import type { Clock } from '../lib/index.js';
import type { RevocationProof, SecretsView, Sleep } from './revocation-proof.js';

/** Which gate: `bundle` (after prepare) or `svids` (after activate). */
export type RolloutStage = 'bundle' | 'svids';

/** Waits until every connected proxy passed the gate, or the timeout passes; the result names who lacked what. */
export async function awaitRootRollout(
  deps: {
    proxies: () => readonly { readonly nodeId: string; readonly workloadKey: string }[];
    ackedSecrets: (nodeId: string) => string | undefined;
    secretsOf: (nodeId: string) => SecretsView | undefined;
    /** Every root of the trust bundle now, one PEM each. */
    rootsPem: () => readonly string[];
    chainOf: (workloadKey: string) => { readonly chainPem: string } | undefined;
    /** Whether a chain's leaf was signed by the current signing CA. */
    signedByCurrent: (chainPem: string) => boolean;
    clock: Clock;
    sleep: Sleep;
    pollMs?: number;
  },
  req: { readonly stage: RolloutStage; readonly timeoutMs: number; readonly rootCaName: string; readonly svidName: string },
): Promise<RevocationProof> {
  const started = deps.clock.now();
  const check = (p: { nodeId: string; workloadKey: string }): string | undefined => {
    const secrets = deps.secretsOf(p.nodeId);
    if (!secrets) return 'no secrets in its snapshot';
    if (req.stage === 'bundle') {
      const missing = deps.rootsPem().filter((pem) => !secrets.holds(req.rootCaName, pem)).length;
      if (missing > 0) return `its ROOTCA lacks ${missing} root(s) of the bundle`;
    } else {
      const chain = deps.chainOf(p.workloadKey);
      if (!chain || !deps.signedByCurrent(chain.chainPem)) return 'its workload has no SVID under the new root yet';
      if (!secrets.holds(req.svidName, chain.chainPem)) return 'its snapshot does not yet carry the re-issued SVID';
    }
    const acked = deps.ackedSecrets(p.nodeId);
    if (acked !== secrets.version) return `SDS version ${secrets.version} sent, last ACKed ${acked ?? 'none'}`;
    return undefined;
  };
  for (;;) {
    const results = deps.proxies().map((p) => ({ nodeId: p.nodeId, reason: check(p) }));
    const missing = results.filter((r): r is { nodeId: string; reason: string } => r.reason !== undefined);
    const elapsedMs = deps.clock.now() - started;
    if (missing.length === 0 || elapsedMs >= req.timeoutMs)
      return { proxies: results.length, acknowledged: results.filter((r) => !r.reason).map((r) => r.nodeId), missing, elapsedMs };
    await deps.sleep(Math.min(deps.pollMs ?? 50, req.timeoutMs - elapsedMs));
  }
}

/** Whether the leaf (first certificate) of a PEM chain was signed by this CA certificate. */
export function leafSignedBy(chainPem: string, caPem: string): boolean {
  const end = chainPem.indexOf('-----END CERTIFICATE-----');
  if (end < 0) return false;
  try {
    return new X509Certificate(chainPem.slice(0, end + 25)).verify(new X509Certificate(caPem).publicKey);
  } catch {
    return false; // unparsable: not under this CA
  }
}
