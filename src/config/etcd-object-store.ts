// Config objects in etcd: one key per object under `<prefix>config/`, read and written with the
// maintained etcd3 client. Watches are resumed by the config source, not by the client library,
// so that the revision a watch resumes from is always the last one the source applied.
import type { Etcd3, Watcher } from 'etcd3';
import { readPrefix } from '../store/index.js';
import type {
  CommitResult,
  ConfigObjectStore,
  StoreCommit,
  StoreEvent,
  StoreListing,
  StoredObject,
  StoreWatchHandlers,
} from './object-store.js';

/** Most operations in one etcd transaction (etcd's --max-txn-ops defaults to 128). */
const MAX_TXN_OPS = 100;

/** Options of createEtcdObjectStore. */
export interface EtcdObjectStoreOptions {
  readonly client: Etcd3;
  /** Key prefix shared by every meshpilot key of this mesh (e.g. `/meshpilot/`); config lives under `<prefix>config/`. */
  readonly prefix: string;
  /** The endpoints, for messages. */
  readonly endpoints: readonly string[];
  /** Closes the client with the store (when the store made it). */
  readonly ownsClient?: boolean;
  /** Keys per page when listing (default 500; tests use a small one to read several pages). */
  readonly listPageSize?: number;
}

// etcd cancels a watch whose start revision was compacted away; the client reports it as
// "Watcher canceled: <reason>" with the reason often empty. Any cancel by the server means the
// history asked for is not available: the source reloads, which is right in every case.
const isCompacted = (message: string): boolean => /compact|canceled/i.test(message);

/** Creates a config store on etcd. */
export function createEtcdObjectStore(o: EtcdObjectStoreOptions): ConfigObjectStore {
  const root = `${o.prefix.endsWith('/') ? o.prefix : `${o.prefix}/`}config/`;
  const description = `etcd ${o.endpoints.join(',')} ${root}`;
  const strip = (k: Buffer): string => k.toString('utf8').slice(root.length);
  const unreachable = (e: unknown) => new Error(`etcd at ${o.endpoints.join(', ')}: ${(e as Error).message}`);

  return {
    description,
    displayKey: (key) => `etcd:${root}${key}`,
    async list(): Promise<StoreListing> {
      try {
        const { revision, kvs } = await readPrefix(o.client, root, o.listPageSize);
        const objects: StoredObject[] = kvs.map((kv) => ({
          key: strip(kv.key),
          value: kv.value.toString('utf8'),
          modRevision: Number(kv.mod_revision),
        }));
        return { revision, objects };
      } catch (e) {
        throw unreachable(e);
      }
    },
    watch(afterRevision: number, h: StoreWatchHandlers) {
      let done = false;
      const end = (kind: 'compacted' | 'broken', message: string) => {
        if (done) return;
        done = true;
        void w.cancel().catch(() => undefined);
        h.ended({ kind, message });
      };
      const w: Watcher = o.client
        .watch()
        .prefix(root)
        .startRevision(String(afterRevision + 1))
        .watcher();
      w.on('connected', () => {
        if (!done) h.started();
      });
      w.on('data', (res) => {
        if (done) return;
        // A canceled response (compaction) carries no events; 'error' follows it.
        if (res.canceled) return;
        const events: StoreEvent[] = res.events.map((ev) =>
          ev.type === 'Delete'
            ? { type: 'delete' as const, key: strip(ev.kv.key), modRevision: Number(ev.kv.mod_revision) }
            : { type: 'put' as const, key: strip(ev.kv.key), value: ev.kv.value.toString('utf8'), modRevision: Number(ev.kv.mod_revision) },
        );
        // A progress notification (no events) still moves the revision the reader has seen.
        h.events(events, Number(res.header.revision));
      });
      // The library would reconnect on its own, from a revision it tracks itself; the source resumes instead.
      w.on('disconnected', (e: Error) => end('broken', unreachable(e).message));
      w.on('error', (e: Error) => end(isCompacted(e.message) ? 'compacted' : 'broken', e.message));
      return {
        cancel() {
          done = true;
          void w.cancel().catch(() => undefined);
        },
      };
    },
    async commit(c: StoreCommit): Promise<CommitResult> {
      const ops = [
        ...c.puts.map((p) => ({ key: p.key, op: o.client.put(root + p.key).value(p.value) })),
        ...c.deletes.map((key) => ({ key, op: o.client.delete().key(root + key) })),
      ];
      let revision = 0;
      // etcd caps the operations of one transaction: a large apply goes in chunks, each checked on its own.
      for (let i = 0; i < ops.length; i += MAX_TXN_OPS) {
        const chunk = ops.slice(i, i + MAX_TXN_OPS);
        const [firstOp, ...rest] = chunk;
        if (!firstOp) break;
        let txn = o.client.if(root + firstOp.key, 'Mod', '==', c.expected.get(firstOp.key) ?? 0);
        for (const r of rest) txn = txn.and(root + r.key, 'Mod', '==', c.expected.get(r.key) ?? 0);
        let res;
        try {
          res = await txn.then(...chunk.map((x) => x.op)).commit();
        } catch (e) {
          throw unreachable(e);
        }
        if (!res.succeeded) return { ok: false, conflict: chunk.map((x) => x.key).join(', ') };
        revision = Number(res.header.revision);
      }
      return { ok: true, revision };
    },
    async close() {
      if (o.ownsClient) o.client.close();
    },
  };
}
