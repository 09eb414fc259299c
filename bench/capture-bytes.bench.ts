// Per-proxy bytes in capture mode against loopback mode (issue 12's speed target: within 10 %).
// Over the real-path bench's generated mesh, the push controller builds one proxy of each mode
// for every workload of a sample; what a proxy receives at cold start over SotW is exactly the
// resources of its snapshot, so their encoded sizes are summed per type. Covers the generators
// and the snapshot, not the wire (the real-path bench measures the wire in loopback mode).
import { loadConfig } from '../src/config/index.js';
import { createEphemeralCa } from '../src/ca/index.js';
import { INTERCEPTION_MODE_METADATA } from '../src/bootstrap/index.js';
import { createManualClock } from '../src/lib/index.js';
import { diffModels } from '../src/model/index.js';
import { silentLogger } from '../src/observability/index.js';
import { createInboundPolicySource } from '../src/policy/index.js';
import { typeShortName } from '../src/proto/index.js';
import { createPushController } from '../src/push/index.js';
import { createSvidStore, realTimers } from '../src/secrets/index.js';
import { createSnapshotCache, type Snapshot } from '../src/snapshot/index.js';
import { writeMeshConfig } from './lib/mesh-config.js';
import { result, type BenchResult } from './lib/report.js';

const PROXIES = 1_000;
const SAMPLE = 50;

/** Summed encoded bytes of every resource in a snapshot, and per type. */
function bytesOf(s: Snapshot): { total: number; byType: Record<string, number> } {
  const byType: Record<string, number> = {};
  let total = 0;
  for (const t of s.typeUrls()) {
    let n = 0;
    for (const r of s.resources(t).values()) n += r.sotwChunk().length;
    byType[typeShortName[t]] = n;
    total += n;
  }
  return { total, byType };
}

/** Builds a sample of proxies in each mode and compares their bytes. */
export async function run(): Promise<BenchResult[]> {
  const cfg = writeMeshConfig(PROXIES);
  try {
    const loaded = await loadConfig([cfg.dir]);
    if (!loaded.model) throw new Error(`bench config rejected: ${JSON.stringify(loaded.diagnostics.slice(0, 3))}`);
    const model = loaded.model;
    const clock = createManualClock(Date.now());
    const ca = createEphemeralCa({ clock });
    const log = silentLogger;
    const svids = createSvidStore({
      ca,
      ttlMs: 3_600_000,
      renewal: { atFraction: 0.5, jitterFraction: 0 },
      clock,
      timers: realTimers,
      log,
    });
    const cache = createSnapshotCache({ log });
    const push = createPushController({
      cache,
      ca,
      svids,
      policy: createInboundPolicySource({ fetchJwks: () => undefined, log }),
      serveKeys: true,
      log,
      clock,
      timers: realTimers,
    });
    push.setModel(model, { kind: 'config', changes: diffModels(undefined, model) });
    push.flush();
    svids.onChanged((workloadKey) => push.request({ kind: 'svid', workloadKey }));
    const sample = cfg.workloads.slice(0, SAMPLE);
    const snaps = new Map<string, Snapshot>();
    for (const w of sample) {
      for (const capture of [false, true]) {
        // The same workload in each mode, one after the other (one node id is connected at a time).
        const key = `${capture ? 'capture' : 'loopback'} ${w.nodeId}`;
        const watched = push.watch(
          { nodeId: w.nodeId, identity: undefined, metadata: capture ? { [INTERCEPTION_MODE_METADATA]: 'REDIRECT' } : {} },
          (s) => snaps.set(key, s),
        );
        if (!watched.ok) throw new Error(watched.error.reason);
        await svids.settled();
        push.flush();
        watched.value();
      }
    }
    let loopback = 0;
    let capture = 0;
    const loopTypes: Record<string, number> = {};
    const capTypes: Record<string, number> = {};
    for (const w of sample) {
      const l = bytesOf(snaps.get(`loopback ${w.nodeId}`)!);
      const c = bytesOf(snaps.get(`capture ${w.nodeId}`)!);
      loopback += l.total;
      capture += c.total;
      for (const [t, n] of Object.entries(l.byType)) loopTypes[t] = (loopTypes[t] ?? 0) + n / sample.length;
      for (const [t, n] of Object.entries(c.byType)) capTypes[t] = (capTypes[t] ?? 0) + n / sample.length;
    }
    push.close();
    svids.close();
    ca.close();
    const fmt = (m: Record<string, number>) =>
      Object.entries(m)
        .map(([t, n]) => `${t} ${(n / 1024).toFixed(1)}`)
        .join(', ');
    return [
      result({
        name: `capture.bytes_per_proxy.${PROXIES}`,
        value: capture / sample.length / 1024,
        unit: 'KiB',
        baseline: { name: 'the same proxies in loopback mode', value: loopback / sample.length / 1024 },
        target: '≤ 1.10',
        note: `${SAMPLE} proxies of a ${PROXIES}-workload mesh; KiB per type, capture: ${fmt(capTypes)}; loopback: ${fmt(loopTypes)}`,
      }),
    ];
  } finally {
    cfg.remove();
  }
}
