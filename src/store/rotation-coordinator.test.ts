// The gated root rotation of replicas on one shared CA store: recorded in the store, driven by
// the leader only, gated on the ACK reports of every live replica, refused while one runs,
// resumed by the next leader. Runs on the memory store and on a real etcd.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Etcd3 } from 'etcd3';
import { mustSpiffeId } from '../identity/index.js';
import {
  createMemoryBacking,
  createMemoryCaStateStore,
  createMemoryRotationBacking,
  createMemoryRotationStore,
  createRotationCoordinator,
  generateKeyPair,
  openSharedCa,
} from '../ca/index.js';
import type { CaStateStore, RotationCoordinator, RotationRecord, RotationStore, SharedCa } from '../ca/index.js';
import type { Clock } from '../lib/index.js';
import { createEtcdCaStateStore } from './etcd-ca-store.js';
import { createEtcdLeadership } from './etcd-leadership.js';
import type { Leadership } from './etcd-leadership.js';
import { startEtcdCluster } from './etcd-kit.js';
import type { EtcdCluster } from './etcd-kit.js';
import { createEtcdRotationStore } from './etcd-rotation-store.js';
import { createSealer } from './sealing.js';

interface Backing {
  readonly name: string;
  ca(): CaStateStore;
  rotations(replica: string): RotationStore;
  readonly client?: Etcd3;
  readonly prefix?: string;
  cleanup(): Promise<void>;
}

let cluster: EtcdCluster | undefined;
after(async () => {
  await cluster?.stop();
});

const kinds: { name: string; open(): Promise<Backing> }[] = [
  {
    name: 'memory',
    open() {
      const ca = createMemoryBacking();
      const rot = createMemoryRotationBacking();
      return Promise.resolve({
        name: 'memory',
        ca: () => createMemoryCaStateStore(ca),
        rotations: (replica) => createMemoryRotationStore(rot, replica),
        cleanup: () => Promise.resolve(),
      });
    },
  },
  {
    name: 'etcd',
    async open() {
      cluster ??= await startEtcdCluster({ members: 1 });
      const c = cluster;
      const client = c.client();
      const prefix = `/rotation-${randomBytes(4).toString('hex')}/`;
      const sealer = createSealer(randomBytes(32));
      return {
        name: 'etcd',
        client,
        prefix,
        ca: () => createEtcdCaStateStore({ client, prefix, sealer, sealerSource: '--ca-store-key test', endpoints: c.endpoints }),
        // One lease per store object: each is a replica whose report goes when it closes.
        rotations: () => createEtcdRotationStore({ client, prefix, endpoints: c.endpoints, ttlSeconds: 2, electionName: 'ca-singletons' }),
        cleanup: async () => {
          await client.delete().prefix(prefix);
          client.close();
        },
      };
    },
  },
];

/** A replica: a real shared CA, its coordinator, and the ACK state of its (simulated) proxies. */
interface Replica {
  readonly name: string;
  readonly shared: SharedCa;
  readonly coordinator: RotationCoordinator;
  leader: boolean;
  /** nodeId → why it has not ACKed the current gate (absent: ACKed). */
  readonly lagging: Map<string, string>;
  proxies: number;
}

async function replica(b: Backing, name: string, o: { clock?: Clock; isLeader?: () => boolean } = {}): Promise<Replica> {
  const s = await openSharedCa({ store: b.ca() });
  assert.ok(s.ok, s.ok ? '' : s.error.message);
  const r: Replica = {
    name,
    shared: s.value,
    leader: false,
    lagging: new Map(),
    proxies: 1,
    coordinator: undefined as unknown as RotationCoordinator,
  };
  (r as { coordinator: RotationCoordinator }).coordinator = createRotationCoordinator({
    store: b.rotations(name),
    replica: name,
    isLeader: o.isLeader ?? (() => r.leader),
    ca: s.value.ca,
    localGate: () => Promise.resolve({ proxies: r.proxies, missing: [...r.lagging].map(([nodeId, reason]) => ({ nodeId, reason })) }),
    clock: o.clock ?? { now: () => Date.now() },
    // Rounds are run by the test (tick), one replica after another.
    pollMs: 3_600_000,
  });
  return r;
}

const view = async (r: Replica): Promise<RotationRecord | undefined> => {
  const v = await r.coordinator.view();
  assert.ok(v.ok, v.ok ? '' : v.error);
  return v.value.rotation;
};

/** Runs rounds on every replica (bounded) until `done` holds of the record. */
async function drive(rs: readonly Replica[], done: (r: RotationRecord | undefined) => boolean, what: string): Promise<RotationRecord> {
  for (let i = 0; i < 300; i++) {
    for (const r of rs) await r.coordinator.tick();
    const rec = await view(rs[0]!);
    if (done(rec)) return rec!;
    await new Promise((res) => setTimeout(res, 20));
  }
  assert.fail(`never happened: ${what}; record: ${JSON.stringify(await view(rs[0]!))}`);
}

const close = async (rs: readonly Replica[]) => {
  for (const r of rs) {
    await r.coordinator.close();
    r.shared.ca.close();
  }
};

for (const kind of kinds) {
  describe(`store (${kind.name}): gated root rotation of replicas`, function () {
    this.timeout(60_000);
    let b: Backing;
    let rs: Replica[] = [];
    beforeEach(async () => {
      b = await kind.open();
      rs = [];
    });
    afterEach(async () => {
      await close(rs);
      await b.cleanup();
    });

    it('is driven by the leader alone and waits for the proxies of every replica at each gate', async () => {
      rs = [await replica(b, 'a'), await replica(b, 'b')];
      const [a, r2] = rs as [Replica, Replica];
      a.leader = true;
      const oldRoot = a.shared.ca.status().roots[0]!.fingerprint256;
      // Requested through the follower; recorded in the store.
      const started = await r2.coordinator.start({ forceRetire: false, gateTimeoutMs: 60_000 });
      assert.ok(started.ok, started.ok ? '' : started.error);
      assert.equal(started.value.requestedBy, 'b');
      // B's proxy has not ACKed the bundle: the gate holds, on both replicas' views.
      r2.lagging.set('sidecar~10.0.0.2~backend', 'its ROOTCA lacks 1 root(s) of the bundle');
      await drive(rs, (r) => r?.step === 'bundle', 'prepare done');
      for (let i = 0; i < 5; i++) for (const r of rs) await r.coordinator.tick();
      let rec = await view(r2);
      assert.equal(rec?.step, 'bundle', 'the gate waits for the proxy of the follower');
      assert.equal(rec?.driver, 'a');
      assert.equal(r2.shared.ca.status().rotation, 'prepared');
      const v = await a.coordinator.view();
      assert.ok(v.ok);
      assert.deepEqual(v.value.reports.map((x) => x.replica).sort(), ['a', 'b']);
      // It ACKs: the rotation goes through to the end.
      r2.lagging.clear();
      rec = await drive(rs, (r) => r?.state !== 'running', 'the rotation to finish');
      assert.equal(rec.state, 'complete', rec.message);
      assert.equal(rec.driver, 'a');
      for (const r of rs) await drive(rs, () => r.shared.ca.status().rotation === 'none', `${r.name} sees it retired`);
      const roots = a.shared.ca.status().roots;
      assert.equal(roots.length, 1);
      assert.notEqual(roots[0]!.fingerprint256, oldRoot);
    });

    it('refuses a second rotation while one runs, naming it', async () => {
      rs = [await replica(b, 'a'), await replica(b, 'b')];
      const first = await rs[0]!.coordinator.start({ forceRetire: false, gateTimeoutMs: 60_000 });
      assert.ok(first.ok);
      const second = await rs[1]!.coordinator.start({ forceRetire: true, gateTimeoutMs: 60_000 });
      assert.ok(!second.ok);
      assert.match(second.error, new RegExp(`root rotation ${first.value.id} is in progress \\(step prepare, requested through a at `));
      // Two at once: exactly one is recorded.
      rs[0]!.leader = true;
      await drive(rs, (r) => r?.state === 'complete', 'the first one to finish');
      const both = await Promise.all(rs.map((r) => r.coordinator.start({ forceRetire: false, gateTimeoutMs: 60_000 })));
      assert.equal(both.filter((x) => x.ok).length, 1, JSON.stringify(both));
      assert.match((both.find((x) => !x.ok) as { error: string }).error, /is in progress/);
    });

    it('is resumed by the next leader from the recorded step when the leader goes', async () => {
      rs = [await replica(b, 'a'), await replica(b, 'b'), await replica(b, 'c')];
      const [a, r2, c] = rs as [Replica, Replica, Replica];
      a.leader = true;
      c.lagging.set('sidecar~10.0.0.3~frontend', 'SDS version 4 sent, last ACKed 3');
      assert.ok((await r2.coordinator.start({ forceRetire: false, gateTimeoutMs: 60_000 })).ok);
      await drive(rs, (r) => r?.step === 'bundle', 'prepare done');
      // The leader goes (its report with it); another replica wins the election.
      await a.coordinator.close();
      a.shared.ca.close();
      rs = [r2, c];
      r2.leader = true;
      c.lagging.clear();
      const rec = await drive(rs, (r) => r?.state !== 'running', 'the new leader to finish it');
      assert.equal(rec.state, 'complete', rec.message);
      assert.equal(rec.driver, 'b');
      assert.equal(r2.shared.ca.status().roots.length, 1);
    });

    it('is held, naming the proxies, when a gate is not passed in time; a new request resumes from the CA phase', async () => {
      let now = 1_000_000;
      const clock = { now: () => now };
      rs = [await replica(b, 'a', { clock }), await replica(b, 'b', { clock })];
      const [a, r2] = rs as [Replica, Replica];
      a.leader = true;
      r2.lagging.set('sidecar~10.0.0.2~backend', 'its ROOTCA lacks 1 root(s) of the bundle');
      assert.ok((await a.coordinator.start({ forceRetire: false, gateTimeoutMs: 5_000 })).ok);
      await drive(rs, (r) => r?.step === 'bundle', 'prepare done');
      now += 6_000;
      const held = await drive(rs, (r) => r?.state === 'held', 'held at the gate');
      assert.equal(held.step, 'bundle');
      assert.match(
        held.message ?? '',
        /gate 'bundle' not passed within 5000 ms: replica b: sidecar~10\.0\.0\.2~backend: its ROOTCA lacks 1 root/,
      );
      assert.equal(a.shared.ca.status().rotation, 'prepared', 'nothing after the gate ran');
      r2.lagging.clear();
      const again = await r2.coordinator.start({ forceRetire: false, gateTimeoutMs: 5_000 });
      assert.ok(again.ok);
      assert.equal(again.value.step, 'bundle', 'resumed at the gate the CA phase calls for');
      assert.equal((await drive(rs, (r) => r?.state !== 'running', 'done')).state, 'complete');
    });

    it('is held at retire while SVIDs of the old root are outstanding, and completes with forceRetire', async () => {
      rs = [await replica(b, 'a'), await replica(b, 'b')];
      rs[0]!.leader = true;
      rs[1]!.shared.ca.signSvid({ spiffeId: mustSpiffeId('spiffe://cluster.local/ns/a/sa/b'), publicKey: generateKeyPair().publicKey });
      assert.ok((await rs[1]!.coordinator.start({ forceRetire: false, gateTimeoutMs: 60_000 })).ok);
      const held = await drive(rs, (r) => r?.state !== 'running', 'the rotation to stop');
      assert.equal(held.state, 'held');
      assert.equal(held.step, 'retire');
      assert.match(held.message ?? '', /^retire refused: .*; rerun after they expire, revoke them, or pass --force-retire$/);
      assert.ok((await rs[1]!.coordinator.start({ forceRetire: true, gateTimeoutMs: 60_000 })).ok);
      assert.equal((await drive(rs, (r) => r?.state !== 'running', 'done')).state, 'complete');
    });

    // On etcd the live replicas are the election's candidates: the election test below covers them.
    if (kind.name === 'memory')
      it('waits for a live replica that has not reported at all', async () => {
        rs = [await replica(b, 'a'), await replica(b, 'b')];
        const [a, r2] = rs as [Replica, Replica];
        a.leader = true;
        assert.ok((await a.coordinator.start({ forceRetire: false, gateTimeoutMs: 60_000 })).ok);
        // Only the leader runs rounds: B (a campaigning replica) never reports.
        for (let i = 0; i < 10; i++) await a.coordinator.tick();
        assert.equal((await view(a))?.step, 'bundle', 'waits for B');
        assert.equal((await drive([a, r2], (r) => r?.state !== 'running', 'done')).state, 'complete');
      });

    it('waits for a replica whose CA has not yet seen the step (its report is judged against other roots)', async () => {
      rs = [await replica(b, 'a'), await replica(b, 'b')];
      const a = rs[0]!;
      a.leader = true;
      assert.ok((await a.coordinator.start({ forceRetire: false, gateTimeoutMs: 60_000 })).ok);
      await drive([a], (r) => r?.step === 'bundle', 'prepare done');
      // B reports against its CA of before prepare, as a lagging replica would.
      const stale = await b.rotations('b').publish({
        replica: 'b',
        rotationId: (await view(a))!.id,
        stage: 'bundle',
        judgedAgainst: 'an older bundle',
        proxies: 1,
        missing: [],
        at: Date.now(),
      });
      assert.ok(stale.ok);
      await a.coordinator.tick();
      assert.equal((await view(a))?.step, 'bundle', 'not opened on a stale report');
      assert.equal((await drive(rs, (r) => r?.state !== 'running', 'done')).state, 'complete');
    });
  });
}

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

/**
 * A replica in its own process: campaigns, and while a rotation runs reports a proxy of its own
 * that never ACKs. It prints 'leader' when it leads; SIGKILL is its death (its leases expire).
 */
function stuckReplicaProcess(c: EtcdCluster, prefix: string): { proc: ChildProcess; leads: () => boolean; stderr: () => string } {
  const script = `
import { tlsClient } from ${JSON.stringify(here('./etcd-kit.js'))};
import { createEtcdLeadership } from ${JSON.stringify(here('./etcd-leadership.js'))};
import { createEtcdRotationStore } from ${JSON.stringify(here('./etcd-rotation-store.js'))};
const client = tlsClient(${JSON.stringify(c.endpoints)}, ${JSON.stringify(c.tls)});
const prefix = ${JSON.stringify(prefix)};
const l = createEtcdLeadership({ client, prefix, name: 'ca-singletons', candidate: 'doomed', ttlSeconds: 2, retryMs: 200 });
l.onChange((v) => process.stdout.write(v ? 'leader\\n' : 'follower\\n'));
const store = createEtcdRotationStore({ client, prefix, endpoints: ${JSON.stringify(c.endpoints)}, ttlSeconds: 2, electionName: 'ca-singletons' });
setInterval(async () => {
  const r = await store.load();
  if (!r.ok || !r.value || r.value.value.state !== 'running') return;
  const stage = r.value.value.step === 'svids' ? 'svids' : 'bundle';
  await store.publish({ replica: 'doomed', rotationId: r.value.value.id, stage, judgedAgainst: '-', proxies: 1,
    missing: [{ nodeId: 'stuck-proxy', reason: 'SDS version 2 sent, last ACKed 1' }], at: Date.now() });
}, 100);`;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let leading = false;
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => {
    for (const line of String(d).split('\n')) if (line) leading = line === 'leader';
  });
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + String(d)).slice(-2000)));
  return { proc, leads: () => leading && proc.exitCode === null && proc.signalCode === null, stderr: () => stderr };
}

describe('store (etcd): the gated rotation moves with the election', function () {
  this.timeout(90_000);
  let b: Backing;
  before(async () => {
    b = await kinds[1]!.open();
  });
  after(async () => {
    await b?.cleanup();
  });

  it('is not driven while another process leads; when it is SIGKILLed, its report goes with its lease and the next leader finishes', async () => {
    const c = cluster!;
    const doomed = stuckReplicaProcess(c, b.prefix!);
    const client = c.client();
    let leadership: Leadership | undefined;
    const rs: Replica[] = [];
    try {
      for (let i = 0; i < 600 && !doomed.leads(); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(doomed.leads(), `the other process leads first: ${doomed.stderr()}`);
      const l = createEtcdLeadership({
        client,
        prefix: b.prefix!,
        name: 'ca-singletons',
        candidate: 'survivor',
        ttlSeconds: 2,
        retryMs: 200,
      });
      leadership = l;
      const rb: Backing = {
        ...b,
        rotations: () =>
          createEtcdRotationStore({ client, prefix: b.prefix!, endpoints: c.endpoints, ttlSeconds: 2, electionName: 'ca-singletons' }),
      };
      rs.push(await replica(rb, 'survivor', { isLeader: () => l.isLeader() }));
      const survivor = rs[0]!;
      assert.ok((await survivor.coordinator.start({ forceRetire: false, gateTimeoutMs: 60_000 })).ok);
      for (let i = 0; i < 10; i++) {
        await survivor.coordinator.tick();
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal((await view(survivor))?.step, 'prepare', 'a follower does not drive it');
      assert.equal(survivor.shared.ca.status().rotation, 'none');
      const v = await survivor.coordinator.view();
      assert.ok(v.ok && v.value.reports.some((r) => r.replica === 'doomed'), 'the leader process reports its proxies');
      const live = await rb.rotations('survivor').replicas();
      assert.ok(live.ok);
      assert.deepEqual(live.value.sort(), ['doomed', 'survivor'], 'the live replicas are the campaigning ones');
      doomed.proc.kill('SIGKILL');
      const rec = await drive(rs, (r) => r?.state !== 'running', 'the survivor to lead and finish');
      assert.equal(rec.state, 'complete', rec.message);
      assert.equal(rec.driver, 'survivor');
      const after = await survivor.coordinator.view();
      assert.ok(after.ok);
      assert.deepEqual(
        after.value.reports.map((r) => r.replica),
        ['survivor'],
        "the dead process's report expired with its lease",
      );
      const left = await rb.rotations('survivor').replicas();
      assert.ok(left.ok);
      assert.deepEqual(left.value, ['survivor']);
    } finally {
      doomed.proc.kill('SIGKILL');
      await leadership?.close();
      await close(rs);
      client.close();
    }
  });
});
