// The gated root rotation of replicas on a shared CA store. Any replica's admin port accepts the
// request (recorded in the store; a second one while it runs is refused, naming it); the leader
// of the singleton election drives it step by step, each step a compare-and-swap on the record,
// so a deposed leader's late write is lost and the next leader resumes from the recorded step.
// Every replica publishes what its own proxies ACKed; a gate opens when every live replica
// reported on it, judged against the same roots or signing CA, with no proxy missing.
import { randomBytes } from 'node:crypto';
import { err, ok } from '../lib/index.js';
import type { Clock, Result } from '../lib/index.js';
import { silentLogger } from '../observability/index.js';
import type { Logger } from '../observability/index.js';
import type { AckReport, RotationRecord, RotationStep, RotationStore } from './rotation-record.js';
import type { Versioned } from './shared-store.js';

/** What the coordinator needs of the CA. */
export interface RotatingCa {
  status(): {
    readonly mode: string;
    readonly rotation: 'none' | 'prepared' | 'activated';
    readonly roots: readonly { readonly fingerprint256: string }[];
    readonly signingCa: { readonly fingerprint256: string };
  };
  rotateRoot(phase: 'prepare' | 'activate' | 'retire', opts: { force: boolean }): Promise<Result<unknown, { message: string }>>;
}

export interface RotationCoordinatorDeps {
  readonly store: RotationStore;
  /** This replica's name (the election candidate). */
  readonly replica: string;
  readonly isLeader: () => boolean;
  readonly ca: RotatingCa;
  /** This replica's own proxies, judged now (the gate check with no wait). */
  readonly localGate: (stage: 'bundle' | 'svids') => Promise<{ proxies: number; missing: readonly { nodeId: string; reason: string }[] }>;
  readonly clock: Clock;
  readonly log?: Logger;
  /** How often every replica reports and the leader advances (default 250 ms). */
  readonly pollMs?: number;
}

/** The rotation and what every replica reported. */
export interface RotationView {
  readonly rotation?: RotationRecord;
  readonly reports: readonly AckReport[];
}

export interface RotationCoordinator {
  /** Records a new gated rotation; refused while one is running. */
  start(o: { forceRetire: boolean; gateTimeoutMs: number }): Promise<Result<RotationRecord, string>>;
  view(): Promise<Result<RotationView, string>>;
  /** One round: report, and (leader) advance. The timer calls it; tests call it directly. */
  tick(): Promise<void>;
  close(): Promise<void>;
}

const gateOf = (step: RotationStep): 'bundle' | 'svids' | undefined => (step === 'bundle' || step === 'svids' ? step : undefined);
const unreachable = (m: string) => /^ca store unreachable/.test(m);

/** Starts reporting and driving; `close` stops both (the record stays for the next leader). */
export function createRotationCoordinator(deps: RotationCoordinatorDeps): RotationCoordinator {
  const { store, ca, clock } = deps;
  const log = deps.log ?? silentLogger;
  const judged = (stage: 'bundle' | 'svids'): string => {
    const s = ca.status();
    return stage === 'bundle'
      ? s.roots
          .map((r) => r.fingerprint256)
          .sort()
          .join(',')
      : s.signingCa.fingerprint256;
  };
  const describe = (r: RotationRecord) =>
    `root rotation ${r.id} is in progress (step ${r.step}, requested through ${r.requestedBy} at ${new Date(r.startedAt).toISOString()})`;

  // Writes the next record; false when another writer (a newer leader, an operator) changed it first.
  const write = async (cur: Versioned<RotationRecord>, change: Partial<RotationRecord>): Promise<boolean> => {
    const next: RotationRecord = { ...cur.value, ...change, driver: deps.replica, updatedAt: clock.now() };
    const r = await store.compareAndSwap(cur.revision, next);
    if (!r.ok) {
      log.warn('root rotation record not written', { rotation: cur.value.id, cause: r.error });
      return false;
    }
    if (r.value && (change.state || change.step))
      log.info('root rotation advanced', { rotation: next.id, step: next.step, state: next.state, message: next.message });
    return r.value;
  };
  const hold = (cur: Versioned<RotationRecord>, message: string) => write(cur, { state: 'held', message });

  const gate = async (cur: Versioned<RotationRecord>, stage: 'bundle' | 'svids'): Promise<'open' | 'wait' | string> => {
    const [reports, live] = await Promise.all([store.reports(), store.replicas()]);
    if (!reports.ok || !live.ok) return 'wait';
    const against = judged(stage);
    const problems: string[] = [];
    for (const name of live.value)
      if (!reports.value.some((r) => r.replica === name)) problems.push(`replica ${name} has not reported on this rotation yet`);
    for (const r of reports.value) {
      if (r.rotationId !== cur.value.id || r.stage !== stage || r.judgedAgainst !== against)
        problems.push(`replica ${r.replica} has not reported on this gate yet`);
      else for (const m of r.missing) problems.push(`replica ${r.replica}: ${m.nodeId}: ${m.reason}`);
    }
    if (problems.length === 0 && reports.value.some((r) => r.replica === deps.replica)) return 'open';
    const since = cur.value.gateSince ?? cur.value.updatedAt;
    if (clock.now() - since < cur.value.gateTimeoutMs) return 'wait';
    return `gate '${stage}' not passed within ${cur.value.gateTimeoutMs} ms: ${problems.join('; ') || 'no report from this replica'}`;
  };

  // Runs a CA step; a step refused because the CA is already past it (the previous leader did it) counts as done.
  const step = async (phase: 'prepare' | 'activate' | 'retire', force: boolean): Promise<'done' | 'retry' | string> => {
    const r = await ca.rotateRoot(phase, { force });
    if (r.ok) return 'done';
    const now = ca.status().rotation;
    if ((phase === 'prepare' && now !== 'none') || (phase === 'activate' && now === 'activated')) return 'done';
    return unreachable(r.error.message) ? 'retry' : r.error.message;
  };

  const advance = async (cur: Versioned<RotationRecord>): Promise<void> => {
    const rec = cur.value;
    if (rec.driver !== deps.replica) {
      log.info('root rotation driven by this replica', { rotation: rec.id, step: rec.step, previousDriver: rec.driver ?? null });
      if (!(await write(cur, {}))) return;
      const again = await store.load();
      if (!again.ok || !again.value) return;
      cur = again.value;
    }
    const phase = ca.status().rotation;
    const now = clock.now();
    switch (rec.step) {
      case 'prepare': {
        if (phase === 'activated') return void (await write(cur, { step: 'svids', gateSince: now }));
        const s = phase === 'prepared' ? 'done' : await step('prepare', false);
        if (s === 'done') await write(cur, { step: 'bundle', gateSince: now, message: 'prepared: new root in the bundle' });
        else if (s !== 'retry') await hold(cur, `prepare refused: ${s}`);
        return;
      }
      case 'activate': {
        const s = phase === 'activated' ? 'done' : await step('activate', false);
        if (s === 'done') await write(cur, { step: 'svids', gateSince: now, message: 'activated: new root signs' });
        else if (s !== 'retry') await hold(cur, `activate refused: ${s}`);
        return;
      }
      case 'retire': {
        const s = phase === 'none' ? 'done' : await step('retire', rec.forceRetire);
        if (s === 'done') await write(cur, { state: 'complete', message: 'retired: old root dropped' });
        else if (s !== 'retry')
          await hold(cur, `retire refused: ${s}${rec.forceRetire ? '' : '; rerun after they expire, revoke them, or pass --force-retire'}`);
        return;
      }
      default: {
        const stage = rec.step as 'bundle' | 'svids';
        if (stage === 'bundle' && phase === 'activated') return void (await write(cur, { step: 'svids', gateSince: now }));
        const g = await gate(cur, stage);
        if (g === 'open') await write(cur, stage === 'bundle' ? { step: 'activate' } : { step: 'retire' });
        else if (g !== 'wait') await hold(cur, g);
      }
    }
  };

  let ticking: Promise<void> | undefined;
  const round = async (): Promise<void> => {
    const loaded = await store.load();
    if (!loaded.ok || !loaded.value || loaded.value.value.state !== 'running') return;
    const cur = loaded.value;
    const stage = gateOf(cur.value.step);
    if (stage) {
      const against = judged(stage);
      const local = await deps.localGate(stage);
      const p = await store.publish({
        replica: deps.replica,
        rotationId: cur.value.id,
        stage,
        judgedAgainst: against,
        proxies: local.proxies,
        missing: local.missing.map((m) => ({ nodeId: m.nodeId, reason: m.reason })),
        at: clock.now(),
      });
      if (!p.ok) log.warn('root rotation report not published', { cause: p.error });
    }
    if (deps.isLeader()) await advance(cur);
  };
  const tick = (): Promise<void> =>
    (ticking ??= round()
      .catch((e: unknown) => log.error('root rotation round failed', { cause: String(e) }))
      .finally(() => (ticking = undefined)));

  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (closed) return;
    timer = setTimeout(() => void tick().finally(schedule), deps.pollMs ?? 250);
    timer.unref();
  };
  schedule();

  return {
    async start(o) {
      const s = ca.status();
      if (s.mode !== 'self-signed') return err(`a ${s.mode} CA's root is rotated by replacing its plug-in files, not by rotate-root`);
      const loaded = await store.load();
      if (!loaded.ok) return loaded;
      if (loaded.value?.value.state === 'running') return err(describe(loaded.value.value));
      const now = clock.now();
      const first: RotationStep = s.rotation === 'none' ? 'prepare' : s.rotation === 'prepared' ? 'bundle' : 'svids';
      const rec: RotationRecord = {
        format: 1,
        id: `rotation-${new Date(now).toISOString().replace(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`,
        requestedBy: deps.replica,
        startedAt: now,
        forceRetire: o.forceRetire,
        gateTimeoutMs: o.gateTimeoutMs,
        state: 'running',
        step: first,
        ...(gateOf(first) ? { gateSince: now } : {}),
        updatedAt: now,
      };
      const w = await store.compareAndSwap(loaded.value?.revision, rec);
      if (!w.ok) return w;
      if (!w.value) {
        const other = await store.load();
        return err(other.ok && other.value ? describe(other.value.value) : 'another root rotation request was recorded first');
      }
      log.info('root rotation requested', { rotation: rec.id, step: rec.step, forceRetire: rec.forceRetire });
      void tick();
      return ok(rec);
    },
    async view() {
      const [r, reps] = await Promise.all([store.load(), store.reports()]);
      if (!r.ok) return r;
      if (!reps.ok) return reps;
      return ok({ ...(r.value ? { rotation: r.value.value } : {}), reports: reps.value });
    },
    tick,
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      await ticking;
      await store.close();
    },
  };
}
