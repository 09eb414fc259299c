// Proof that a revocation reached the mesh: every connected proxy has ACKed an SDS
// response whose ROOTCA carries the current CRL, and the proxies of the workload that
// held the revoked certificate have ACKed one carrying its new SVID. Judged by content,
// not by time: the proxy's current snapshot must hold the CRL (and the fresh SVID), and
// the SDS version the proxy ACKed must be that snapshot's, so an SDS response built
// before the revocation and ACKed after it never counts.
import type { Clock } from '../lib/index.js';

/** What the proof reads of one proxy's current snapshot: its SDS version and whether a secret holds some text. */
export interface SecretsView {
  readonly version: string;
  holds(secretName: string, text: string): boolean;
}

/** One proxy that had not acknowledged in time, and what it lacked. */
export interface Unacknowledged {
  readonly nodeId: string;
  readonly reason: string;
}

/** The outcome of a wait: who acknowledged, who did not, and how long it took. */
export interface RevocationProof {
  readonly proxies: number;
  readonly acknowledged: readonly string[];
  readonly missing: readonly Unacknowledged[];
  readonly elapsedMs: number;
}

/** Sleeps; injected so tests control time. */
export type Sleep = (ms: number) => Promise<void>;

/** Waits until the mesh acknowledges a revocation, or the timeout passes. */
export async function proveRevocation(
  deps: {
    proxies: () => readonly { readonly nodeId: string; readonly workloadKey: string }[];
    /** The SDS version the proxy last ACKed. */
    ackedSecrets: (nodeId: string) => string | undefined;
    secretsOf: (nodeId: string) => SecretsView | undefined;
    /** The CRL as served now (PEM). */
    crlPem: () => string;
    /** The holder workload's current certificate chain (PEM), once reissued. */
    chainOf: (workloadKey: string) => { readonly serialHex: string; readonly chainPem: string } | undefined;
    clock: Clock;
    sleep: Sleep;
    pollMs?: number;
  },
  req: {
    readonly serialHex: string;
    readonly holder?: string;
    readonly timeoutMs: number;
    readonly rootCaName: string;
    readonly svidName: string;
  },
): Promise<RevocationProof> {
  const started = deps.clock.now();
  const norm = (s: string) => s.replace(/:/g, '').toLowerCase();
  const check = (p: { nodeId: string; workloadKey: string }): string | undefined => {
    const secrets = deps.secretsOf(p.nodeId);
    if (!secrets) return 'no secrets in its snapshot';
    if (!secrets.holds(req.rootCaName, deps.crlPem())) return 'its snapshot does not yet carry the new CRL';
    if (p.workloadKey === req.holder) {
      const cert = deps.chainOf(p.workloadKey);
      if (!cert || norm(cert.serialHex) === norm(req.serialHex)) return 'its workload has no fresh SVID yet';
      if (!secrets.holds(req.svidName, cert.chainPem)) return 'its snapshot does not yet carry the fresh SVID';
    }
    const acked = deps.ackedSecrets(p.nodeId);
    if (acked !== secrets.version) return `SDS version ${secrets.version} sent, last ACKed ${acked ?? 'none'}`;
    return undefined;
  };
  for (;;) {
    const results = deps.proxies().map((p) => ({ nodeId: p.nodeId, reason: check(p) }));
    const missing = results.filter((r): r is Unacknowledged => r.reason !== undefined);
    const elapsedMs = deps.clock.now() - started;
    if (missing.length === 0 || elapsedMs >= req.timeoutMs) {
      return { proxies: results.length, acknowledged: results.filter((r) => !r.reason).map((r) => r.nodeId), missing, elapsedMs };
    }
    await deps.sleep(Math.min(deps.pollMs ?? 50, req.timeoutMs - elapsedMs));
  }
}

/** The SDS part of a proxy's snapshot as the proof reads it; undefined when the snapshot serves no secrets. */
export function secretsViewOf(
  snap: { typeVersion(t: never): string; resources(t: never): ReadonlyMap<string, { anyBytes(): Buffer }> } | undefined,
  secretType: string,
): SecretsView | undefined {
  const t = secretType as never;
  const secrets = snap?.resources(t);
  if (!snap || !secrets || secrets.size === 0) return undefined;
  return {
    version: snap.typeVersion(t),
    // A PEM string is carried verbatim in the encoded Secret (an inline_string field).
    holds: (name, text) => text !== '' && (secrets.get(name)?.anyBytes().includes(Buffer.from(text)) ?? false),
  };
}
