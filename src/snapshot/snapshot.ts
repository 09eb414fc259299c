import { err, ok, shortHash, type Result } from '../lib/index.js';
import type { TypeUrl } from '../proto/index.js';
import type { EncodedResource, ResourceRef } from './encoded-resource.js';

/** An immutable set of encoded resources for one proxy (or one view shared by many). */
export interface Snapshot {
  /** A hash of every type's version: equal snapshots have equal versions. */
  readonly version: string;
  /** The resources of one type, by name. */
  resources(typeUrl: TypeUrl): ReadonlyMap<string, EncodedResource>;
  /** A hash of the names and versions of one type's resources. */
  typeVersion(typeUrl: TypeUrl): string;
  /** The type URLs this snapshot has resources for. */
  typeUrls(): readonly TypeUrl[];
  /** References to resources this snapshot does not hold (a route naming a missing cluster, ...). */
  danglingReferences(): readonly (ResourceRef & { readonly from: string })[];
}

const empty: ReadonlyMap<string, EncodedResource> = new Map();

/** Builds a snapshot; two resources of one type with the same name are an error, never sent. */
export function createSnapshot(resources: readonly EncodedResource[]): Result<Snapshot> {
  const byType = new Map<TypeUrl, Map<string, EncodedResource>>();
  const duplicates: string[] = [];
  for (const r of resources) {
    let m = byType.get(r.typeUrl);
    if (!m) byType.set(r.typeUrl, (m = new Map()));
    if (m.has(r.name)) duplicates.push(`${r.typeUrl} ${r.name}`);
    m.set(r.name, r);
  }
  if (duplicates.length > 0) return err(`duplicate resource names: ${duplicates.join(', ')}`);
  const typeVersions = new Map<TypeUrl, string>();
  for (const [t, m] of byType) typeVersions.set(t, versionOf([...m.values()]));
  const types = [...byType.keys()].sort();
  const version = shortHash(types.map((t) => `${t}=${typeVersions.get(t)}`).join('\n'));
  let dangling: readonly (ResourceRef & { readonly from: string })[] | undefined;
  return ok({
    version,
    resources: (t) => byType.get(t) ?? empty,
    typeVersion: (t) => typeVersions.get(t) ?? versionOf([]),
    typeUrls: () => types,
    // Computed once: the same snapshot is often published to many proxies sharing a view.
    danglingReferences: () => (dangling ??= findDangling(resources, byType)),
  });
}

function findDangling(resources: readonly EncodedResource[], byType: ReadonlyMap<TypeUrl, ReadonlyMap<string, EncodedResource>>) {
  const out: (ResourceRef & { from: string })[] = [];
  for (const r of resources) for (const ref of r.refs) if (!byType.get(ref.typeUrl)?.has(ref.name)) out.push({ ...ref, from: r.name });
  return out;
}

/** The version of a set of resources: a hash of their sorted names and versions. */
export function versionOf(resources: readonly EncodedResource[]): string {
  return shortHash(
    resources
      .map((r) => `${r.name}@${r.version()}`)
      .sort()
      .join('\n'),
  );
}

/** A readable summary of a snapshot: each type's version and its resources' names and versions. */
export function describeSnapshot(snap: Snapshot): {
  version: string;
  types: Record<string, { version: string; resources: Record<string, string> }>;
} {
  const types: Record<string, { version: string; resources: Record<string, string> }> = {};
  for (const t of snap.typeUrls()) {
    types[t] = { version: snap.typeVersion(t), resources: Object.fromEntries([...snap.resources(t)].map(([n, r]) => [n, r.version()])) };
  }
  return { version: snap.version, types };
}
