// The CA state store contract: memory, state directory and etcd pass the same suite (STYLE.md 11).
// Each harness opens several store objects on one backing, as several replicas would.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDirCaStateStore, createMemoryBacking, createMemoryCaStateStore, generateKeyPair } from '../ca/index.js';
import type { CaRecord, CaStateStore, IssuanceRecord, Versioned } from '../ca/index.js';
import { createEtcdCaStateStore } from './etcd-ca-store.js';
import { startEtcdCluster } from './etcd-kit.js';
import type { EtcdCluster } from './etcd-kit.js';
import { createSealer } from './sealing.js';
import { randomBytes } from 'node:crypto';

interface Harness {
  /** A new store object on the shared backing (a replica). */
  replica(): CaStateStore;
  /** Writes an unreadable issuance record; returns the key a diagnostic must name. */
  corruptJournal(): Promise<string>;
  /** Makes the record unreadable; returns the key a diagnostic must name. */
  corruptState(): Promise<string>;
  cleanup(): Promise<void>;
}

interface Impl {
  readonly name: string;
  open(): Promise<Harness>;
}

let cluster: EtcdCluster | undefined;
const etcd = async () => (cluster ??= await startEtcdCluster({ members: 1 }));
after(async () => {
  await cluster?.stop();
});

const impls: Impl[] = [
  {
    name: 'memory',
    open() {
      const backing = createMemoryBacking();
      return Promise.resolve({
        replica: () => createMemoryCaStateStore(backing),
        corruptJournal: () => {
          backing.journal.set('ff00', '{"serial": 12');
          return Promise.resolve('memory store issued/ff00');
        },
        corruptState: () => {
          backing.state = { text: '{"format": 1, "trustDomain": "', revision: ++backing.revision };
          return Promise.resolve('memory store state');
        },
        cleanup: () => Promise.resolve(),
      });
    },
  },
  {
    name: 'state directory',
    open() {
      const dir = mkdtempSync(join(tmpdir(), 'meshpilot-castore-'));
      return Promise.resolve({
        replica: () => createDirCaStateStore(dir),
        corruptJournal: () => {
          appendFileSync(join(dir, 'issued.jsonl'), 'garbage\n');
          return Promise.resolve(join(dir, 'issued.jsonl:'));
        },
        corruptState: () => {
          writeFileSync(join(dir, 'ca.json'), '{"format": 1,');
          return Promise.resolve(join(dir, 'ca.json'));
        },
        cleanup: () => {
          rmSync(dir, { recursive: true, force: true });
          return Promise.resolve();
        },
      });
    },
  },
  {
    name: 'etcd',
    async open() {
      const c = await etcd();
      const client = c.client();
      const prefix = `/contract-${randomBytes(4).toString('hex')}/`;
      const sealer = createSealer(randomBytes(32));
      const opened: CaStateStore[] = [];
      return {
        replica: () => {
          const s = createEtcdCaStateStore({ client, prefix, sealer, sealerSource: '--ca-store-key test', endpoints: c.endpoints });
          opened.push(s);
          return s;
        },
        corruptJournal: async () => {
          await client.put(`${prefix}ca/issued/ff00`).value('{"serial": 12');
          return `${prefix}ca/issued/ff00`;
        },
        corruptState: async () => {
          await client.put(`${prefix}ca/state`).value('not json');
          return `${prefix}ca/state`;
        },
        cleanup: async () => {
          for (const s of opened) s.close();
          await client.delete().prefix(prefix);
          client.close();
        },
      };
    },
  },
];

const keyPem = () => generateKeyPair('ec-p256').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const record = (over: Partial<CaRecord> = {}): CaRecord => ({
  format: 1,
  trustDomain: 'cluster.local',
  mode: 'self-signed',
  issuers: ['root-1'],
  signing: 'root-1',
  crlNumber: 0,
  revoked: [],
  roots: { 'root-1': { certPem: CERT, keyPem: keyPem() } },
  tokenKeyPem: keyPem(),
  ...over,
});
const issuance = (serial: string): IssuanceRecord => ({
  serial,
  issuer: 'root-1',
  spiffeId: 'spiffe://cluster.local/ns/a/sa/b',
  notAfter: Date.now() + 3_600_000,
});

async function must<T>(p: Promise<{ ok: true; value: T } | { ok: false; error: { message: string } }>): Promise<T> {
  const r = await p;
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

/** Reads, changes and compare-and-swaps until applied (bounded), as the CA does. */
async function update(store: CaStateStore, change: (r: CaRecord) => CaRecord): Promise<number> {
  let cur = await must(store.load());
  for (let attempt = 1; attempt <= 100; attempt++) {
    const out = await must(store.compareAndSwap(cur!.revision, change(cur!.value)));
    if (out.applied) return attempt;
    cur = out.current;
  }
  throw new Error('no progress after 100 attempts');
}

for (const impl of impls) {
  describe(`ca state store contract: ${impl.name}`, function () {
    this.timeout(60_000);
    let h: Harness;
    beforeEach(async () => {
      h = await impl.open();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it('starts empty, creates once, and round-trips the record with its key material', async () => {
      const a = h.replica();
      assert.equal(await must(a.load()), undefined);
      const r1 = record();
      const out = await must(a.compareAndSwap(undefined, r1));
      assert.ok(out.applied);
      const loaded = await must(h.replica().load());
      assert.deepEqual(loaded?.value, r1);
      assert.equal(loaded?.revision, out.applied ? out.revision : '');
      const again = await must(h.replica().compareAndSwap(undefined, record({ trustDomain: 'other.example' })));
      assert.ok(!again.applied, 'a second create loses');
      assert.equal(again.current?.value.trustDomain, 'cluster.local');
    });

    it('refuses a stale revision with what is there now, and a retry with it applies', async () => {
      const a = h.replica();
      const b = h.replica();
      const created = await must(a.compareAndSwap(undefined, record()));
      assert.ok(created.applied);
      const byB = await must(b.compareAndSwap(created.revision, record({ crlNumber: 5 })));
      assert.ok(byB.applied);
      const stale = await must(a.compareAndSwap(created.revision, record({ crlNumber: 6 })));
      assert.ok(!stale.applied);
      assert.equal(stale.current?.value.crlNumber, 5);
      const retry = await must(a.compareAndSwap(stale.current!.revision, { ...stale.current!.value, crlNumber: 6 }));
      assert.ok(retry.applied);
      assert.equal((await must(b.load()))?.value.crlNumber, 6);
    });

    it("tells a watcher of another writer's change", async () => {
      const a = h.replica();
      const b = h.replica();
      const created = await must(a.compareAndSwap(undefined, record()));
      assert.ok(created.applied);
      const seen: Versioned<CaRecord>[] = [];
      const got = new Promise<void>((resolve) => {
        const off = a.watch((v) => {
          seen.push(v);
          if (v.value.revoked.length === 1) {
            off();
            resolve();
          }
        });
      });
      // Let the watch start before the write (etcd's watch is created asynchronously).
      await new Promise((r) => setTimeout(r, 200));
      const revoked = { ...issuance('abc1'), revokedAt: Date.now() };
      const w = await must(b.compareAndSwap(created.revision, record({ revoked: [revoked] })));
      assert.ok(w.applied);
      await got;
      assert.deepEqual(seen.at(-1)!.value.revoked, [revoked]);
      assert.equal(seen.at(-1)!.revision, w.revision);
    });

    it('loses no update in a compare-and-swap storm between two writers', async () => {
      const a = h.replica();
      const b = h.replica();
      assert.ok((await must(a.compareAndSwap(undefined, record()))).applied);
      const bump = (r: CaRecord) => ({ ...r, crlNumber: r.crlNumber + 1 });
      const runs = await Promise.all([
        ...Array.from({ length: 10 }, () => update(a, bump)),
        ...Array.from({ length: 10 }, () => update(b, bump)),
      ]);
      assert.equal((await must(h.replica().load()))?.value.crlNumber, 20);
      assert.ok(
        runs.some((n) => n > 1),
        'the writers did conflict',
      );
    });

    it('keeps journal appends from two writers, and removes records', async () => {
      const a = h.replica();
      const b = h.replica();
      for (let i = 0; i < 5; i++) {
        assert.ok(a.appendIssued(issuance(`a${i}`)).ok);
        assert.ok(b.appendIssued(issuance(`b${i}`)).ok);
      }
      await must(a.flush());
      await must(b.flush());
      const c = h.replica();
      const all = await must(c.loadIssued());
      assert.deepEqual(all.records.map((r) => r.serial).sort(), ['a0', 'a1', 'a2', 'a3', 'a4', 'b0', 'b1', 'b2', 'b3', 'b4']);
      await must(c.removeIssued(['a0', 'b4']));
      const left = await must(h.replica().loadIssued());
      assert.deepEqual(left.records.map((r) => r.serial).sort(), ['a1', 'a2', 'a3', 'a4', 'b0', 'b1', 'b2', 'b3']);
    });

    it('skips a corrupt journal entry and names its key', async () => {
      const a = h.replica();
      assert.ok(a.appendIssued(issuance('aa')).ok);
      await must(a.flush());
      const key = await h.corruptJournal();
      const j = await must(h.replica().loadIssued());
      assert.deepEqual(
        j.records.map((r) => r.serial),
        ['aa'],
      );
      assert.equal(j.skipped.length, 1);
      assert.ok(j.skipped[0]!.key.startsWith(key), `${j.skipped[0]!.key} names ${key}`);
    });

    it('reports a corrupt record with its key rather than loading it', async () => {
      const a = h.replica();
      assert.ok((await must(a.compareAndSwap(undefined, record()))).applied);
      const key = await h.corruptState();
      const r = await h.replica().load();
      assert.ok(!r.ok);
      assert.equal(r.error.kind, 'bad-state');
      assert.ok(r.error.message.includes(key), r.error.message);
    });
  });
}
