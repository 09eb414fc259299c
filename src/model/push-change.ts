import type { ChangeSet, ObjectChange } from './diff.js';
import type { ObjectKind } from './types.js';

/**
 * What a push must account for, merged over one debounce window: config objects that
 * changed, workloads whose certificate changed, and trust material or JWKS keys that
 * changed. Generators read it to decide whether it concerns their type for a proxy.
 */
export interface PushChange {
  /** Everything may have changed (the first model, changed mesh settings): rebuild every type. */
  readonly full: boolean;
  /** Config objects added, updated or removed. */
  readonly objects: readonly ObjectChange[];
  /** Kinds of the changed objects. */
  readonly kinds: ReadonlySet<ObjectKind>;
  /** Workload keys (`namespace/name`) whose SVID changed. */
  readonly svids: ReadonlySet<string>;
  /** The trust bundle or the CRL changed. */
  readonly trust: boolean;
  /** Fetched JWKS keys changed. */
  readonly jwks: boolean;
}

/** One event that feeds the push path. */
export type PushEvent =
  | { readonly kind: 'config'; readonly changes: ChangeSet }
  | { readonly kind: 'svid'; readonly workloadKey: string }
  | { readonly kind: 'trust' }
  | { readonly kind: 'jwks' };

/** The change that needs nothing rebuilt. */
export const NO_CHANGE: PushChange = Object.freeze({
  full: false,
  objects: Object.freeze([]) as readonly ObjectChange[],
  kinds: new Set<ObjectKind>(),
  svids: new Set<string>(),
  trust: false,
  jwks: false,
});

/** Merges events into one change (order does not matter). */
export function mergeEvents(events: Iterable<PushEvent>): PushChange {
  let full = false;
  let trust = false;
  let jwks = false;
  const objects = new Map<string, ObjectChange>();
  const svids = new Set<string>();
  for (const e of events) {
    if (e.kind === 'svid') svids.add(e.workloadKey);
    else if (e.kind === 'trust') trust = true;
    else if (e.kind === 'jwks') jwks = true;
    else {
      // The first model, or new mesh settings (domain suffix, aliases), touch everything.
      if (e.changes.fromVersion === undefined || e.changes.settingsChanged) full = true;
      for (const c of e.changes.changes) objects.set(`${c.kind}/${c.namespace}/${c.name}`, c);
    }
  }
  const list = [...objects.values()];
  return { full, objects: list, kinds: new Set(list.map((c) => c.kind)), svids, trust, jwks };
}
