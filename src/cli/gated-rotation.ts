// `meshpilot ca rotate-root` without --phase: the whole root rotation, each phase gated on proof
// from the running control plane. prepare → wait until every connected proxy ACKed a ROOTCA with
// both roots → activate → wait until every connected workload's SVID is re-issued under the new
// root and ACKed → retire. The CA status names the phase reached, so a run that stops (timeout,
// interrupt) is resumed by running the command again.
import type { RevocationProof } from '../observability/index.js';

/** The admin calls the driver makes; the CLI wires them to callAdmin. */
export interface RotationAdmin {
  status(): Promise<{ rotation: 'none' | 'prepared' | 'activated' }>;
  step(phase: 'prepare' | 'activate' | 'retire', force: boolean): Promise<{ ok: true } | { ok: false; error: string }>;
  awaitRollout(stage: 'bundle' | 'svids', timeoutMs: number): Promise<RevocationProof>;
}

/** Runs the rotation from the phase the CA is in; returns 0 when retired, 1 when a gate or retire held it back. */
export async function runGatedRotation(
  admin: RotationAdmin,
  o: { timeoutMs: number; forceRetire: boolean; write: (text: string) => void },
): Promise<number> {
  const w = o.write;
  const gate = async (stage: 'bundle' | 'svids', what: string): Promise<boolean> => {
    w(`waiting until every connected proxy ACKed ${what}...\n`);
    const p = await admin.awaitRollout(stage, o.timeoutMs);
    if (p.missing.length === 0) {
      w(`  ${p.proxies} prox${p.proxies === 1 ? 'y' : 'ies'} ACKed in ${p.elapsedMs} ms\n`);
      return true;
    }
    for (const m of p.missing) w(`  not yet: ${m.nodeId}: ${m.reason}\n`);
    w(`stopped after ${p.elapsedMs} ms; run the command again to resume from this phase\n`);
    return false;
  };
  const step = async (phase: 'prepare' | 'activate' | 'retire'): Promise<boolean> => {
    const r = await admin.step(phase, phase === 'retire' && o.forceRetire);
    if (r.ok) w(`${phase}: done\n`);
    else w(`${phase}: refused: ${r.error}\n`);
    return r.ok;
  };
  let phase = (await admin.status()).rotation;
  w(`root rotation phase: ${phase}\n`);
  if (phase === 'none') {
    if (!(await step('prepare'))) return 1;
    phase = 'prepared';
  }
  if (phase === 'prepared') {
    if (!(await gate('bundle', 'a trust bundle with both roots'))) return 1;
    if (!(await step('activate'))) return 1;
  }
  if (!(await gate('svids', 'its SVID re-issued under the new root'))) return 1;
  // Retire is refused while SVIDs of the old root are unexpired: those of workloads not connected
  // now, or issued by CSR to node agents. They stop verifying once the old root leaves the bundle,
  // so only --force-retire drops it early; otherwise rerun after they expire or are revoked.
  if (!(await step('retire'))) {
    if (!o.forceRetire) w('rerun after they expire, revoke them, or pass --force-retire\n');
    return 1;
  }
  w('root rotation complete\n');
  return 0;
}

/** The admin calls of a rotation run by replicas on a shared CA store. */
export interface SharedRotationAdmin {
  start(forceRetire: boolean, gateTimeoutMs: number): Promise<{ ok: true; id: string } | { ok: false; error: string }>;
  /** The recorded rotation, or an error when this replica cannot say now (it retries). */
  view(): Promise<{ ok: true; rotation?: SharedRotationState } | { ok: false; error: string }>;
}

/** What the CLI shows of the record (src/ca/rotation-record.ts). */
export interface SharedRotationState {
  readonly id: string;
  readonly state: 'running' | 'complete' | 'held';
  readonly step: string;
  readonly driver?: string;
  readonly message?: string;
}

/**
 * Replicas on a shared CA store: records the rotation through this replica and follows it while
 * the leader drives it (whichever replica leads, including after a failover). Returns 0 when
 * complete, 1 when held or refused. Bounded: gives up following after `followMs`.
 */
export async function followSharedRotation(
  admin: SharedRotationAdmin,
  o: {
    timeoutMs: number;
    forceRetire: boolean;
    write: (text: string) => void;
    /** Reports a refused request (another rotation in progress, store unreachable) on stderr and exits. */
    refuse: (message: string) => never;
    followMs: number;
    pollMs?: number;
  },
): Promise<number> {
  const w = o.write;
  const started = await admin.start(o.forceRetire, o.timeoutMs);
  if (!started.ok) return o.refuse(started.error);
  w(`root rotation ${started.id} recorded; the leader replica drives it\n`);
  let last = '';
  const deadline = Date.now() + o.followMs;
  while (Date.now() < deadline) {
    const v = await admin.view().catch((e: unknown) => ({ ok: false as const, error: String(e) }));
    if (v.ok && v.rotation?.id === started.id) {
      const r = v.rotation;
      const line = `step ${r.step} (${r.state}, driven by ${r.driver ?? 'no leader yet'})${r.message ? `: ${r.message}` : ''}`;
      if (line !== last) w(`${line}\n`);
      last = line;
      if (r.state === 'complete') {
        w('root rotation complete\n');
        return 0;
      }
      if (r.state === 'held') {
        w('held; run the command again to resume from this step\n');
        return 1;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, o.pollMs ?? 250));
  }
  w(
    `still running after ${o.followMs} ms; it goes on without this command: follow it with 'curl .../ca/rotation' or run the command again once it stops\n`,
  );
  return 1;
}
