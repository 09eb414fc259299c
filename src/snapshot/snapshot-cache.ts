import { err, ok, type Result } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import type { Snapshot } from './snapshot.js';

/** A proxy as the xDS layer knows it, enough to find its snapshot. */
export interface ProxyKey {
  readonly nodeId: string;
  /** The identity the proxy proved with its credential (a SPIFFE ID); absent in plaintext development mode. */
  readonly identity?: string;
  /** node.metadata as the proxy sent it: a claim, never a grant (it may choose where secrets come from, not which). */
  readonly metadata?: Readonly<Record<string, unknown>>;
}

/** Why a proxy may not have what it asked for: mapped to PERMISSION_DENIED at the RPC edge. */
export interface WatchRefusal {
  readonly reason: string;
}

/** Where xDS streams get their snapshots: the xDS layer never reads the config model. */
export interface SnapshotSource {
  /**
   * Calls `onSnapshot` now if the proxy has a snapshot, and on every later change, and
   * returns an unsubscribe; or refuses a proxy that may not have this node's config.
   */
  watch(proxy: ProxyKey, onSnapshot: (snap: Snapshot) => void): Result<() => void, WatchRefusal>;
}

/** Per-node snapshots, checked before they are published. */
export interface SnapshotCache extends SnapshotSource {
  /** Publishes a snapshot for a node, unless it has dangling references (then the last good one stays). */
  set(nodeId: string, snap: Snapshot): Result<void>;
  get(nodeId: string): Snapshot | undefined;
  delete(nodeId: string): void;
  nodeIds(): readonly string[];
}

/** Creates an in-memory snapshot cache keyed by Envoy node id. */
export function createSnapshotCache(deps: { log: Logger }): SnapshotCache {
  const snaps = new Map<string, Snapshot>();
  const watchers = new Map<string, Set<(s: Snapshot) => void>>();
  return {
    set(nodeId, snap) {
      const dangling = snap.danglingReferences();
      if (dangling.length > 0) {
        deps.log.error('snapshot rejected', { node: nodeId, version: snap.version, dangling });
        return err(
          `snapshot ${snap.version} for ${nodeId} has dangling references: ${dangling.map((d) => `${d.from} -> ${d.name}`).join(', ')}`,
        );
      }
      if (snaps.get(nodeId)?.version === snap.version) return ok(undefined);
      snaps.set(nodeId, snap);
      for (const cb of watchers.get(nodeId) ?? []) cb(snap);
      return ok(undefined);
    },
    get: (nodeId) => snaps.get(nodeId),
    delete: (nodeId) => {
      snaps.delete(nodeId);
    },
    nodeIds: () => [...snaps.keys()],
    watch(proxy, onSnapshot) {
      let set = watchers.get(proxy.nodeId);
      if (!set) watchers.set(proxy.nodeId, (set = new Set()));
      set.add(onSnapshot);
      const current = snaps.get(proxy.nodeId);
      if (current) onSnapshot(current);
      return ok(() => {
        set.delete(onSnapshot);
        if (set.size === 0) watchers.delete(proxy.nodeId);
      });
    },
  };
}
