// The seam between the config source and where config objects are kept (etcd, or memory in tests).
// Keys are relative to the store's config prefix: `<Kind>/<namespace>/<name>` (see stored-object.ts).

/** One object as the store holds it. */
export interface StoredObject {
  readonly key: string;
  /** The object's YAML text, exactly as `meshpilot apply` wrote it. */
  readonly value: string;
  /** The store revision of the object's last write (etcd's mod_revision); never 0 for a stored object. */
  readonly modRevision: number;
}

/** A change seen by a watch. */
export type StoreEvent =
  | { readonly type: 'put'; readonly key: string; readonly value: string; readonly modRevision: number }
  | { readonly type: 'delete'; readonly key: string; readonly modRevision: number };

/** Every object under the prefix, read at one revision. */
export interface StoreListing {
  readonly revision: number;
  readonly objects: readonly StoredObject[];
}

/** Why a watch ended: history it needs is gone (reload), or the connection broke (resume). */
export type WatchEnd = { readonly kind: 'compacted'; readonly message: string } | { readonly kind: 'broken'; readonly message: string };

/** Callbacks of a watch. */
export interface StoreWatchHandlers {
  /** The store accepted the watch: changes after its revision will follow. */
  started(): void;
  /** Events of whole revisions, in order; `revision` is the store revision they bring the reader to. */
  events(events: readonly StoreEvent[], revision: number): void;
  /** The watch ended on its own; it delivers nothing more. Not called after cancel(). */
  ended(why: WatchEnd): void;
}

/** Writes applied together, only if no key changed since it was read. */
export interface StoreCommit {
  readonly puts: readonly { readonly key: string; readonly value: string }[];
  readonly deletes: readonly string[];
  /** For each key written or deleted: the modRevision it had when read (0: absent). */
  readonly expected: ReadonlyMap<string, number>;
}

/** The outcome of a commit: the new revision, or the key that changed under it. */
export type CommitResult = { readonly ok: true; readonly revision: number } | { readonly ok: false; readonly conflict: string };

/** Where config objects live: read all, watch from a revision, write atomically. */
export interface ConfigObjectStore {
  /** How the store names itself in logs and errors (endpoints and prefix). */
  readonly description: string;
  /** Shows a key to a user: the prefix and the key, as `etcdctl get` would name it. */
  displayKey(key: string): string;
  /** Reads every object; rejects (naming the endpoints) when the store cannot be reached. */
  list(): Promise<StoreListing>;
  /** Delivers every change after `afterRevision`, in order, until cancelled or ended. */
  watch(afterRevision: number, handlers: StoreWatchHandlers): { cancel(): void };
  /** Applies puts and deletes in one transaction if every expected revision still holds. */
  commit(c: StoreCommit): Promise<CommitResult>;
  close(): Promise<void>;
}
