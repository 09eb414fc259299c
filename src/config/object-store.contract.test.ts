// One suite, every config store: memory (tests) and etcd (real, three members, TLS with client certificates).
import assert from 'node:assert/strict';
import { startEtcdCluster, type EtcdCluster } from '../store/etcd-kit.js';
import { createEtcdObjectStore, createMemoryObjectStore, type ConfigObjectStore, type StoreEvent, type WatchEnd } from './index.js';

interface Backend {
  readonly name: string;
  make(): Promise<{ store: ConfigObjectStore; compact(rev: number): Promise<void>; done(): Promise<void> }>;
}

let cluster: EtcdCluster | undefined;
let prefixes = 0;

const backends: Backend[] = [
  {
    name: 'memory',
    async make() {
      const store = createMemoryObjectStore();
      return { store, compact: async (r) => store.compact(r), done: () => store.close() };
    },
  },
  {
    name: 'etcd',
    async make() {
      cluster ??= await startEtcdCluster({ members: 3 });
      const client = cluster.client();
      // Pages of 7 keys, so that every listing here reads several pages.
      const store = createEtcdObjectStore({
        client,
        prefix: `/contract-${++prefixes}/`,
        endpoints: cluster.endpoints,
        ownsClient: true,
        listPageSize: 7,
      });
      return {
        store,
        compact: async (r) => void (await client.kv.compact({ revision: String(r), physical: true })),
        done: () => store.close(),
      };
    },
  },
];

function recorder(): {
  events: StoreEvent[];
  revisions: number[];
  ended: WatchEnd[];
  started: number;
  handlers: Parameters<ConfigObjectStore['watch']>[1];
} {
  const r = {
    events: [] as StoreEvent[],
    revisions: [] as number[],
    ended: [] as WatchEnd[],
    started: 0,
    handlers: undefined as never as Parameters<ConfigObjectStore['watch']>[1],
  };
  r.handlers = {
    started: () => void r.started++,
    events: (e, rev) => {
      r.events.push(...e);
      r.revisions.push(rev);
    },
    ended: (w) => void r.ended.push(w),
  };
  return r;
}

async function until(probe: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('config object store contract', function () {
  this.timeout(120_000);
  after(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  for (const b of backends) {
    describe(b.name, () => {
      let s: Awaited<ReturnType<Backend['make']>>;
      beforeEach(async () => {
        s = await b.make();
      });
      afterEach(async () => s.done());

      it('lists what commits wrote, with the revision of each write', async () => {
        const empty = await s.store.list();
        assert.deepEqual(empty.objects, []);
        const w = await s.store.commit({
          puts: [{ key: 'Service/ns/a', value: 'A' }],
          deletes: [],
          expected: new Map([['Service/ns/a', 0]]),
        });
        assert.ok(w.ok);
        const l = await s.store.list();
        assert.equal(l.revision, w.revision);
        assert.deepEqual(l.objects, [{ key: 'Service/ns/a', value: 'A', modRevision: w.revision }]);
      });

      it('lists every object when they take several pages, in key order, at one revision', async () => {
        const keys = Array.from({ length: 25 }, (_, i) => `k/ns/p${String(i).padStart(2, '0')}`);
        const w = await s.store.commit({ puts: keys.map((key) => ({ key, value: key })), deletes: [], expected: new Map() });
        assert.ok(w.ok);
        const l = await s.store.list();
        assert.deepEqual(
          l.objects.map((o) => [o.key, o.value]),
          keys.map((k) => [k, k]),
        );
        assert.equal(l.revision, w.revision);
      });

      it('refuses a commit when a key changed since it was read, and writes nothing of it', async () => {
        const w1 = await s.store.commit({ puts: [{ key: 'k/ns/a', value: '1' }], deletes: [], expected: new Map([['k/ns/a', 0]]) });
        assert.ok(w1.ok);
        const stale = await s.store.commit({
          puts: [
            { key: 'k/ns/a', value: '2' },
            { key: 'k/ns/b', value: 'new' },
          ],
          deletes: [],
          expected: new Map([
            ['k/ns/a', 0],
            ['k/ns/b', 0],
          ]),
        });
        assert.equal(stale.ok, false);
        const l = await s.store.list();
        assert.deepEqual(
          l.objects.map((o) => [o.key, o.value]),
          [['k/ns/a', '1']],
        );
        const del = await s.store.commit({ puts: [], deletes: ['k/ns/a'], expected: new Map([['k/ns/a', w1.revision]]) });
        assert.ok(del.ok);
        assert.deepEqual((await s.store.list()).objects, []);
      });

      it('watches every change after a revision, in order, including those made before the watch', async () => {
        const base = (await s.store.list()).revision;
        const w1 = await s.store.commit({ puts: [{ key: 'k/ns/a', value: '1' }], deletes: [], expected: new Map([['k/ns/a', 0]]) });
        assert.ok(w1.ok);
        const r = recorder();
        const watch = s.store.watch(base, r.handlers);
        await until(() => r.started > 0, 'watch started');
        const w2 = await s.store.commit({
          puts: [{ key: 'k/ns/a', value: '2' }],
          deletes: [],
          expected: new Map([['k/ns/a', w1.revision]]),
        });
        assert.ok(w2.ok);
        const w3 = await s.store.commit({ puts: [], deletes: ['k/ns/a'], expected: new Map([['k/ns/a', w2.revision]]) });
        assert.ok(w3.ok);
        await until(() => r.events.length >= 3, 'three events');
        watch.cancel();
        assert.deepEqual(
          r.events.map((e) => [e.type, e.key, e.type === 'put' ? e.value : undefined, e.modRevision]),
          [
            ['put', 'k/ns/a', '1', w1.revision],
            ['put', 'k/ns/a', '2', w2.revision],
            ['delete', 'k/ns/a', undefined, w3.revision],
          ],
        );
        assert.equal(r.revisions.at(-1), w3.revision);
        assert.deepEqual(r.ended, [], 'a cancelled watch does not report an end');
      });

      it('ends a watch from a compacted revision as compacted', async () => {
        const base = (await s.store.list()).revision;
        let rev = base;
        for (let i = 0; i < 3; i++) {
          const w = await s.store.commit({
            puts: [{ key: 'k/ns/c', value: String(i) }],
            deletes: [],
            expected: new Map([['k/ns/c', i === 0 ? 0 : rev]]),
          });
          assert.ok(w.ok);
          rev = w.revision;
        }
        await s.compact(rev);
        const r = recorder();
        s.store.watch(base, r.handlers);
        await until(() => r.ended.length > 0, 'watch ended');
        assert.equal(r.ended[0]!.kind, 'compacted');
        assert.deepEqual(r.events, []);
      });
    });
  }
});
