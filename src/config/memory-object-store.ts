import type {
  CommitResult,
  ConfigObjectStore,
  StoreCommit,
  StoreEvent,
  StoreListing,
  StoreWatchHandlers,
  WatchEnd,
} from './object-store.js';

/** A config store in memory with etcd's revision semantics; tests can compact it and break its watches. */
export interface MemoryObjectStore extends ConfigObjectStore {
  /** Forgets history up to and including `revision` (as `etcdctl compact`): watches from before it end as compacted. */
  compact(revision: number): void;
  /** Ends every open watch as broken (a lost connection). */
  breakWatches(message?: string): void;
  /** While false, this reader is cut off: list() rejects and watches end as broken; commits (other writers) still land. */
  setReachable(reachable: boolean): void;
  /** Writes a raw value under a key, bypassing validation (a corrupted or foreign object). */
  putRaw(key: string, value: string): number;
  /** Another client of the same store (another replica, the CLI), which setReachable does not cut off. */
  otherClient(): ConfigObjectStore;
  /** The current revision. */
  revision(): number;
}

/** Creates an empty memory store. */
export function createMemoryObjectStore(description = 'memory'): MemoryObjectStore {
  const objects = new Map<string, { value: string; modRevision: number }>();
  // Every revision's events, oldest first; events at or below `compacted` are gone.
  const history: { revision: number; events: StoreEvent[] }[] = [];
  const watches = new Set<{ after: number; h: StoreWatchHandlers }>();
  let rev = 1;
  let compacted = 0;
  let reachable = true;
  const unreachable = () => new Error(`config store ${description} is unreachable`);

  function end(w: { h: StoreWatchHandlers }, why: WatchEnd): void {
    watches.delete(w as never);
    // Asynchronously, as a network watch would: never inside the caller's stack.
    queueMicrotask(() => w.h.ended(why));
  }

  function publish(events: StoreEvent[]): number {
    rev += 1;
    const stamped = events.map((e) => ({ ...e, modRevision: rev }));
    history.push({ revision: rev, events: stamped });
    for (const w of [...watches]) {
      const r = rev;
      queueMicrotask(() => {
        if (watches.has(w)) w.h.events(stamped, r);
      });
    }
    return rev;
  }

  const listAll = (): StoreListing => ({
    revision: rev,
    objects: [...objects].map(([key, o]) => ({ key, value: o.value, modRevision: o.modRevision })),
  });

  const self: MemoryObjectStore = {
    description,
    displayKey: (key) => `${description}:${key}`,
    async list(): Promise<StoreListing> {
      if (!reachable) throw unreachable();
      return listAll();
    },
    otherClient: () => ({ ...self, list: async () => listAll() }),
    watch(afterRevision, h) {
      const w = { after: afterRevision, h };
      if (!reachable) {
        queueMicrotask(() => h.ended({ kind: 'broken', message: unreachable().message }));
        return { cancel: () => undefined };
      }
      if (afterRevision < compacted) {
        queueMicrotask(() => h.ended({ kind: 'compacted', message: `revision ${afterRevision + 1} has been compacted (at ${compacted})` }));
        return { cancel: () => undefined };
      }
      watches.add(w);
      queueMicrotask(() => {
        if (watches.has(w)) h.started();
      });
      // History after the revision, delivered revision by revision, then live events.
      for (const past of history.filter((x) => x.revision > afterRevision))
        queueMicrotask(() => {
          if (watches.has(w)) h.events(past.events, past.revision);
        });
      return { cancel: () => void watches.delete(w) };
    },
    async commit(c: StoreCommit): Promise<CommitResult> {
      for (const [key, expected] of c.expected) if ((objects.get(key)?.modRevision ?? 0) !== expected) return { ok: false, conflict: key };
      const events: StoreEvent[] = [];
      for (const p of c.puts) events.push({ type: 'put', key: p.key, value: p.value, modRevision: 0 });
      for (const key of c.deletes) if (objects.has(key)) events.push({ type: 'delete', key, modRevision: 0 });
      if (events.length === 0) return { ok: true, revision: rev };
      const revision = publish(events);
      for (const p of c.puts) objects.set(p.key, { value: p.value, modRevision: revision });
      for (const key of c.deletes) objects.delete(key);
      return { ok: true, revision };
    },
    async close() {
      watches.clear();
    },
    compact(revision) {
      compacted = Math.max(compacted, Math.min(revision, rev));
      while (history.length > 0 && history[0]!.revision <= compacted) history.shift();
      for (const w of [...watches])
        if (w.after < compacted) end(w, { kind: 'compacted', message: `revision ${w.after + 1} has been compacted (at ${compacted})` });
    },
    breakWatches(message = 'connection lost') {
      for (const w of [...watches]) end(w, { kind: 'broken', message });
    },
    setReachable(r) {
      reachable = r;
      if (!r) for (const w of [...watches]) end(w, { kind: 'broken', message: unreachable().message });
    },
    putRaw(key, value) {
      const revision = publish([{ type: 'put', key, value, modRevision: 0 }]);
      objects.set(key, { value, modRevision: revision });
      return revision;
    },
    revision: () => rev,
  };
  return self;
}
