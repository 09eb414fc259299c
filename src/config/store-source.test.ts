import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChangeSet, MeshModel } from '../model/index.js';
import { createRecordingLogger } from '../observability/index.js';
import {
  applyToStore,
  createMemoryObjectStore,
  createStoreConfigSource,
  deleteFromStore,
  type MemoryObjectStore,
  type StoreConfigSource,
} from './index.js';

const sa = (name: string, ns = 'app'): string => `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ${name}\n  namespace: ${ns}\n`;
const workload = (name: string, account: string, ns = 'app'): string =>
  `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n  address: 127.0.0.20\n  serviceAccount: ${account}\n`;

async function until<T>(probe: () => T | undefined | false, what: string, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

// Written through another client, as another replica or the CLI would.
async function apply(store: MemoryObjectStore, file: string, text: string): Promise<void> {
  const r = await applyToStore(store.otherClient(), [{ fileName: file, text }]);
  assert.ok(r.ok, JSON.stringify(r.diagnostics));
}

const names = (m: MeshModel | undefined) => m?.serviceAccounts.map((s) => s.name).sort();

describe('createStoreConfigSource', () => {
  let store: MemoryObjectStore;
  let source: StoreConfigSource | undefined;
  let dir: string;
  const log = createRecordingLogger();
  const deliveries: { model: MeshModel; changes: ChangeSet }[] = [];
  const start = (extra: Partial<Parameters<typeof createStoreConfigSource>[0]> = {}) => {
    source = createStoreConfigSource({ store, log, debounceMs: 5, maxDelayMs: 50, retry: { baseMs: 5, maxMs: 20 }, ...extra });
    return source;
  };
  const subscribe = () => source!.subscribe((model, changes) => deliveries.push({ model, changes }));

  beforeEach(async () => {
    store = createMemoryObjectStore('mem');
    dir = await mkdtemp(join(tmpdir(), 'meshpilot-store-source-'));
    log.lines.length = 0;
    deliveries.length = 0;
  });
  afterEach(async () => {
    source?.close();
    source = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers the stored config and each change, with what changed', async () => {
    await apply(store, 'a.yaml', sa('a'));
    start();
    await source!.ready();
    subscribe();
    assert.deepEqual(names(deliveries[0]?.model), ['a']);
    await apply(store, 'b.yaml', sa('b'));
    await until(() => deliveries[1], 'second model');
    assert.deepEqual(names(deliveries[1]!.model), ['a', 'b']);
    assert.deepEqual(
      deliveries[1]!.changes.changes.map((c) => [c.kind, c.name, c.op]),
      [['ServiceAccount', 'b', 'added']],
    );
    assert.equal(source!.status().connected, true);
  });

  it('resumes a broken watch after the last revision: changes made meanwhile arrive once, none lost', async () => {
    await apply(store, 'a.yaml', sa('a'));
    start();
    await source!.ready();
    subscribe();
    store.setReachable(false);
    await until(() => source!.status().connected === false, 'disconnected');
    assert.ok(log.lines.some((l) => l.msg === 'config store unreachable: serving the last config'));
    // Written by other replicas while this one is cut off.
    await apply(store, 'b.yaml', sa('b'));
    await apply(store, 'c.yaml', sa('c'));
    assert.deepEqual(names(source!.current()), ['a'], 'the last config keeps serving');
    store.setReachable(true);
    await until(() => names(source!.current())?.length === 3, 'caught up');
    await until(() => source!.status().connected, 'reconnected');
    assert.equal(source!.status().revision, store.revision());
    assert.ok(!log.lines.some((l) => l.msg === 'config watch compacted: reloading'), 'resumed, not reloaded');
    // Every object added exactly once across the deliveries after the first.
    const added = deliveries.slice(1).flatMap((d) => d.changes.changes.filter((c) => c.op === 'added').map((c) => c.name));
    assert.deepEqual(added.sort(), ['b', 'c']);
  });

  it('reloads when the history it would resume from was compacted, deletions included', async () => {
    await apply(store, 'a.yaml', sa('a') + '---\n' + sa('gone'));
    start();
    await source!.ready();
    subscribe();
    store.setReachable(false);
    await until(() => source!.status().connected === false, 'disconnected');
    await deleteFromStore(store.otherClient(), [{ kind: 'ServiceAccount', namespace: 'app', name: 'gone' }]);
    await apply(store, 'b.yaml', sa('b'));
    store.compact(store.revision());
    store.setReachable(true);
    await until(() => names(source!.current())?.join() === 'a,b', 'reloaded');
    assert.ok(log.lines.some((l) => l.msg === 'config watch compacted: reloading'));
    const changes = deliveries.slice(1).flatMap((d) => d.changes.changes.map((c) => `${c.op} ${c.name}`));
    assert.deepEqual(changes.sort(), ['added b', 'removed gone']);
    await until(() => source!.status().connected, 'watching again');
    await apply(store, 'c.yaml', sa('c'));
    await until(() => names(source!.current())?.length === 3, 'a change after the reload arrives');
  });

  it('skips a corrupted or foreign object, naming its key, and keeps the last good version of an object that goes bad', async () => {
    await apply(store, 'a.yaml', sa('a') + '---\n' + sa('b'));
    start();
    await source!.ready();
    subscribe();
    store.putRaw('ServiceAccount/app/junk', '{{{ not yaml');
    store.putRaw('Deployment/app/web', 'apiVersion: apps/v1\nkind: Deployment\n');
    store.putRaw('ServiceAccount/app/other', sa('not-other'));
    store.putRaw('ServiceAccount/app/b', 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: b\n  namespace: app\n  bogus: [');
    await apply(store, 'c.yaml', sa('c'));
    await until(() => names(source!.current())?.includes('c'), 'c arrives');
    assert.deepEqual(names(source!.current()), ['a', 'b', 'c'], 'b keeps its last good version; the junk is left out');
    const skipped = log.lines.filter((l) => l.msg === 'config object skipped').map((l) => String(l.fields.key));
    assert.deepEqual(skipped.sort(), [
      'mem:Deployment/app/web',
      'mem:ServiceAccount/app/b',
      'mem:ServiceAccount/app/junk',
      'mem:ServiceAccount/app/other',
    ]);
    assert.deepEqual(source!.status().skipped.length, 4);
    assert.ok(
      source!
        .lastDiagnostics()
        .some((d) => d.file === 'mem:ServiceAccount/app/other' && /holds ServiceAccount\/app\/not-other/.test(d.message)),
    );
  });

  it('keeps the last good config when the objects do not fit together, and takes the next good one', async () => {
    await apply(store, 'a.yaml', sa('a') + '---\n' + workload('w', 'a'));
    start();
    await source!.ready();
    subscribe();
    // Another writer removes the account behind apply's back: the workload now names no account.
    const l = await store.list();
    const key = 'ServiceAccount/app/a';
    await store.commit({ puts: [], deletes: [key], expected: new Map([[key, l.objects.find((o) => o.key === key)!.modRevision]]) });
    await until(() => log.lines.some((x) => x.msg === 'config rejected'), 'refused');
    assert.equal(deliveries.length, 1);
    assert.deepEqual(names(source!.current()), ['a']);
    await apply(store, 'a.yaml', sa('a'));
    await until(() => deliveries.length === 2 || log.lines.some((x) => x.msg === 'config unchanged'), 'recovered');
  });

  it('refuses to start when the store is unreachable, naming it, unless allowed to start from its cache', async () => {
    await apply(store, 'a.yaml', sa('a'));
    const cacheFile = join(dir, 'cache.json');
    start({ cacheFile });
    await source!.ready();
    assert.deepEqual(names(source!.current()), ['a']);
    source!.close();

    store.setReachable(false);
    start({ cacheFile });
    await source!.ready();
    assert.equal(source!.current(), undefined);
    assert.match(
      source!.lastDiagnostics()[0]!.message,
      /config store cannot be reached: config store mem is unreachable.*--allow-stale-start/,
    );
    source!.close();

    start({ cacheFile, allowStaleStart: true });
    await source!.ready();
    assert.deepEqual(names(source!.current()), ['a'], 'served from the cache');
    assert.equal(source!.status().connected, false);
    subscribe();
    store.setReachable(true);
    await apply(store, 'b.yaml', sa('b'));
    await until(() => names(source!.current())?.length === 2, 'caught up once the store is back');
    await until(() => source!.status().connected, 'connected');
  });

  it('refuses an empty store at start', async () => {
    start();
    await source!.ready();
    assert.equal(source!.current(), undefined);
    assert.match(source!.lastDiagnostics()[0]!.message, /holds no config objects/);
  });
});

describe('applyToStore / deleteFromStore', () => {
  it('refuses a config that does not load, naming file and line, and writes nothing', async () => {
    const store = createMemoryObjectStore('mem');
    const r = await applyToStore(store, [{ fileName: 'bad.yaml', text: sa('a') + '---\n' + workload('w', 'missing') }]);
    assert.equal(r.ok, false);
    const e = r.diagnostics.find((d) => d.severity === 'error')!;
    assert.equal(e.file, 'bad.yaml');
    assert.ok((e.line ?? 0) > 5, `line of the workload: ${JSON.stringify(e)}`);
    assert.deepEqual((await store.list()).objects, []);
  });

  it('stores one key per object with its source, documents without a namespace get the -n one, re-apply changes nothing', async () => {
    const store = createMemoryObjectStore('mem');
    const text =
      'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n';
    const r = await applyToStore(store, [{ fileName: 'x.yaml', text }], { defaultNamespace: 'app' });
    assert.ok(r.ok);
    assert.deepEqual(r.created, ['ServiceAccount/app/a']);
    assert.ok(
      r.diagnostics.some((d) => /Deployment/.test(d.message)),
      'the skipped kind is reported',
    );
    const [o] = (await store.list()).objects;
    assert.match(o!.value, /^# meshpilot apply: x\.yaml:1\n/);
    assert.match(o!.value, /namespace: app/);
    const again = await applyToStore(store, [{ fileName: 'x.yaml', text }], { defaultNamespace: 'app' });
    assert.ok(again.ok);
    assert.deepEqual(again.unchanged, ['ServiceAccount/app/a']);
    assert.equal(again.revision, r.revision);
  });

  it('names the line each document and each List item starts on', async () => {
    const store = createMemoryObjectStore('mem');
    const item = (n: string) => `  - apiVersion: v1\n    kind: ServiceAccount\n    metadata:\n      name: ${n}\n      namespace: app\n`;
    // a on lines 1-5, `---` on 6, b from 7, `---` on 12, the List from 13, its items from 16 and 21.
    const text = `${sa('a')}---\n${sa('b')}---\napiVersion: v1\nkind: List\nitems:\n${item('c')}${item('d')}`;
    const r = await applyToStore(store, [{ fileName: 'm.yaml', text }]);
    assert.ok(r.ok, JSON.stringify(r.diagnostics));
    const lines = Object.fromEntries(
      (await store.list()).objects.map((o) => [o.key, /^# meshpilot apply: m\.yaml:(\d+)\n/.exec(o.value)?.[1]]),
    );
    assert.deepEqual(lines, {
      'ServiceAccount/app/a': '1',
      'ServiceAccount/app/b': '7',
      'ServiceAccount/app/c': '16',
      'ServiceAccount/app/d': '21',
    });
  });

  it('refuses to delete an object others still name, and deletes one nothing names', async () => {
    const store = createMemoryObjectStore('mem');
    await apply(store, 'a.yaml', sa('a') + '---\n' + sa('b') + '---\n' + workload('w', 'a'));
    const refused = await deleteFromStore(store, [{ kind: 'ServiceAccount', namespace: 'app', name: 'a' }]);
    assert.equal(refused.ok, false);
    assert.ok(
      refused.diagnostics.some((d) => d.file === 'mem:WorkloadEntry/app/w'),
      JSON.stringify(refused.diagnostics),
    );
    const missing = await deleteFromStore(store, [{ kind: 'ServiceAccount', namespace: 'app', name: 'zz' }]);
    assert.equal(missing.ok, false);
    const done = await deleteFromStore(store, [{ kind: 'ServiceAccount', namespace: 'app', name: 'b' }]);
    assert.ok(done.ok);
    assert.deepEqual((await store.list()).objects.map((o) => o.key).sort(), ['ServiceAccount/app/a', 'WorkloadEntry/app/w']);
  });

  it('reads, checks and writes again when another writer got in first, and gives up after a storm, naming the key', async () => {
    const store = createMemoryObjectStore('mem');
    let racing = 1;
    // Another writer changes the key between this apply's read and its commit, `racing` times.
    const contended = {
      ...store,
      commit: async (c: Parameters<typeof store.commit>[0]) => {
        if (racing-- > 0)
          await store.otherClient().commit({
            puts: [{ key: 'ServiceAccount/app/a', value: sa('a') + '# by another writer\n' }],
            deletes: [],
            expected: new Map([
              [
                'ServiceAccount/app/a',
                (await store.otherClient().list()).objects.find((o) => o.key === 'ServiceAccount/app/a')?.modRevision ?? 0,
              ],
            ]),
          });
        return store.commit(c);
      },
    };
    const once = await applyToStore(contended, [{ fileName: 'a.yaml', text: sa('a') }]);
    assert.ok(once.ok, JSON.stringify(once.diagnostics));
    assert.match(
      (await store.list()).objects[0]!.value,
      /^# meshpilot apply: a\.yaml:1\n/,
      'the retry wrote over the other writer, having checked again',
    );
    racing = 100;
    const storm = await applyToStore(contended, [{ fileName: 'a2.yaml', text: sa('a') + '---\n' + sa('b') }]);
    assert.equal(storm.ok, false);
    assert.match(storm.diagnostics[0]!.message, /ServiceAccount\/app\/a.* kept changing under this write \(5 attempts\); try again/);
  });
});
