// The store-backed source on a real etcd (three members, TLS with client certificates): a watch
// broken by a member restart resumes after the last revision; one whose history was compacted
// meanwhile reloads. The reader talks to member 0 only, so killing it cuts the reader off while
// members 1 and 2 keep a quorum and take writes.
import assert from 'node:assert/strict';
import type { ChangeSet, MeshModel } from '../model/index.js';
import { createRecordingLogger } from '../observability/index.js';
import { startEtcdCluster, type EtcdCluster } from '../store/etcd-kit.js';
import {
  applyToStore,
  createEtcdObjectStore,
  createStoreConfigSource,
  deleteFromStore,
  type ConfigObjectStore,
  type StoreConfigSource,
} from './index.js';

const sa = (name: string): string => `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ${name}\n  namespace: app\n`;
const names = (m: MeshModel | undefined) => m?.serviceAccounts.map((s) => s.name).sort();

async function until(probe: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('store config source on etcd (three members)', function () {
  this.timeout(120_000);
  let cluster: EtcdCluster;
  let reader: ConfigObjectStore;
  let writer: ConfigObjectStore;
  let source: StoreConfigSource;
  const log = createRecordingLogger();
  const deliveries: ChangeSet[] = [];

  before(async () => {
    cluster = await startEtcdCluster({ members: 3 });
    reader = createEtcdObjectStore({ client: cluster.client([0]), prefix: '/mp/', endpoints: [cluster.endpoints[0]!], ownsClient: true });
    writer = createEtcdObjectStore({
      client: cluster.client([1, 2]),
      prefix: '/mp/',
      endpoints: cluster.endpoints.slice(1),
      ownsClient: true,
    });
  });
  after(async () => {
    source?.close();
    await reader?.close();
    await writer?.close();
    await cluster?.stop();
  });

  const apply = async (text: string) => {
    const r = await applyToStore(writer, [{ fileName: 'x.yaml', text }]);
    assert.ok(r.ok, JSON.stringify(r.diagnostics));
  };

  it('resumes after a member restart without losing or repeating a change, and reloads after a compaction', async () => {
    await apply(sa('a') + '---\n' + sa('gone'));
    source = createStoreConfigSource({ store: reader, log, debounceMs: 10, maxDelayMs: 100, retry: { baseMs: 50, maxMs: 500 } });
    await source.ready();
    assert.deepEqual(names(source.current()), ['a', 'gone']);
    source.subscribe((_m, c) => deliveries.push(c));
    await until(() => source.status().connected, 'watching');

    // 1. The reader's member dies; the others take writes; it comes back: the watch resumes.
    await cluster.kill(0);
    await until(() => !source.status().connected, 'the source notices');
    await apply(sa('b'));
    await apply(sa('c'));
    assert.deepEqual(names(source.current()), ['a', 'gone'], 'the last config keeps serving');
    await cluster.restart(0);
    await until(() => names(source.current())?.join() === 'a,b,c,gone', 'caught up after the restart');
    await until(() => source.status().connected, 'connected again');
    assert.ok(!log.lines.some((l) => l.msg === 'config watch compacted: reloading'));

    // 2. Cut off again; meanwhile an object is deleted, another added, and history compacted.
    await cluster.kill(0);
    await until(() => !source.status().connected, 'the source notices again');
    const del = await deleteFromStore(writer, [{ kind: 'ServiceAccount', namespace: 'app', name: 'gone' }]);
    assert.ok(del.ok);
    await apply(sa('d'));
    const c = cluster.client([1, 2]);
    try {
      const rev = (await c.getAll().prefix('/mp/').exec()).header.revision;
      await c.kv.compact({ revision: rev, physical: true });
    } finally {
      c.close();
    }
    await cluster.restart(0);
    await until(() => names(source.current())?.join() === 'a,b,c,d', 'reloaded after the compaction');
    assert.ok(log.lines.some((l) => l.msg === 'config watch compacted: reloading'));

    // Every change delivered exactly once, in order.
    const seen = deliveries.slice(1).flatMap((d) => d.changes.map((x) => `${x.op} ${x.name}`));
    assert.equal(seen.filter((x) => x === 'added b').length, 1);
    assert.equal(seen.filter((x) => x === 'added c').length, 1);
    assert.equal(seen.filter((x) => x === 'added d').length, 1);
    assert.equal(seen.filter((x) => x === 'removed gone').length, 1);
    assert.equal(seen.length, 4);
  });
});
