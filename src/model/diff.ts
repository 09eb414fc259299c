import { hashesOf, type MeshModel } from './mesh-model.js';
import type { ObjectKind, ObjectRef } from './types.js';

/** How one object changed between two model versions. */
export interface ObjectChange extends ObjectRef {
  readonly op: 'added' | 'updated' | 'removed';
}

/** What changed from one model version to the next: generators read it to decide whether a change concerns them. */
export interface ChangeSet {
  /** Version of the previous model; undefined for the first model. */
  readonly fromVersion: string | undefined;
  readonly toVersion: string;
  /** Changed objects, sorted by kind, namespace and name. */
  readonly changes: readonly ObjectChange[];
  /** Every kind with a change; includes `MeshConfig` when the settings changed. */
  readonly kinds: ReadonlySet<ObjectKind>;
  /** Namespaces of the changed objects (not including settings). */
  readonly namespaces: ReadonlySet<string>;
  /** True when the mesh-wide settings changed. */
  readonly settingsChanged: boolean;
}

function parseKey(key: string): ObjectRef {
  const [kind, namespace, name] = key.split('/') as [ObjectKind, string, string];
  return { kind, namespace, name };
}

/** Compares two models object by object; with no previous model every object counts as added. */
export function diffModels(prev: MeshModel | undefined, next: MeshModel): ChangeSet {
  const after = hashesOf(next);
  const before = prev ? hashesOf(prev) : { objects: new Map<string, string>(), settings: undefined };
  const changes: ObjectChange[] = [];
  for (const [key, hash] of after.objects) {
    const old = before.objects.get(key);
    if (old === undefined) changes.push({ ...parseKey(key), op: 'added' });
    else if (old !== hash) changes.push({ ...parseKey(key), op: 'updated' });
  }
  for (const key of before.objects.keys()) {
    if (!after.objects.has(key)) changes.push({ ...parseKey(key), op: 'removed' });
  }
  changes.sort((a, b) => {
    const ka = `${a.kind}/${a.namespace}/${a.name}`;
    const kb = `${b.kind}/${b.namespace}/${b.name}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  const settingsChanged = before.settings !== after.settings;
  const kinds = new Set<ObjectKind>(changes.map((c) => c.kind));
  if (settingsChanged) kinds.add('MeshConfig');
  return Object.freeze({
    fromVersion: prev?.version,
    toVersion: next.version,
    changes: Object.freeze(changes.map((c) => Object.freeze(c))),
    kinds,
    namespaces: new Set(changes.map((c) => c.namespace)),
    settingsChanged,
  });
}
