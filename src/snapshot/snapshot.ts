import { err, ok, shortHash, type Result } from '../lib/index.js';
import type { TypeUrl } from '../proto/index.js';
import type { EncodedResource, ResourceRef } from './encoded-resource.js';

/**
 * The resources of one type, by name, with a version derived from their names and
 * versions. A set is immutable and may be shared by every proxy that receives exactly
 * these resources (all endpoints of the mesh, one namespace's routes): its version is
 * then hashed once, and the xDS layer builds one response for all of them.
 */
export interface ResourceSet {
  readonly typeUrl: TypeUrl;
  readonly resources: ReadonlyMap<string, EncodedResource>;
  /** A hash of the sorted names and versions. */
  version(): string;
}

/** Builds a resource set; two resources with one name are an error, never sent. */
export function resourceSet(typeUrl: TypeUrl, list: Iterable<EncodedResource>): Result<ResourceSet> {
  const resources = new Map<string, EncodedResource>();
  const duplicates: string[] = [];
  for (const r of list) {
    if (r.typeUrl !== typeUrl) return err(`resource ${r.name} is a ${r.typeUrl}, not a ${typeUrl}`);
    if (resources.has(r.name)) duplicates.push(`${typeUrl} ${r.name}`);
    resources.set(r.name, r);
  }
  if (duplicates.length > 0) return err(`duplicate resource names: ${duplicates.join(', ')}`);
  let version: string | undefined;
  return ok({ typeUrl, resources, version: () => (version ??= versionOf(resources.values())) });
}

/** An immutable set of encoded resources for one proxy: one resource set per type, maybe shared with other proxies. */
export interface Snapshot {
  /** A hash of every type's version: equal snapshots have equal versions. */
  readonly version: string;
  /** The resources of one type, by name. */
  resources(typeUrl: TypeUrl): ReadonlyMap<string, EncodedResource>;
  /** The set of one type (the same object for every proxy that shares it), if the snapshot has that type. */
  set(typeUrl: TypeUrl): ResourceSet | undefined;
  /** A hash of the names and versions of one type's resources. */
  typeVersion(typeUrl: TypeUrl): string;
  /** The type URLs this snapshot has resources for. */
  typeUrls(): readonly TypeUrl[];
  /** References to resources this snapshot does not hold (a route naming a missing cluster, ...). */
  danglingReferences(): readonly (ResourceRef & { readonly from: string })[];
}

const empty: ReadonlyMap<string, EncodedResource> = new Map();
const EMPTY_VERSION = shortHash('');

/** Builds a snapshot from loose resources, grouped by type; duplicate names are an error. */
export function createSnapshot(resources: readonly EncodedResource[]): Result<Snapshot> {
  const byType = new Map<TypeUrl, EncodedResource[]>();
  for (const r of resources) {
    let list = byType.get(r.typeUrl);
    if (!list) byType.set(r.typeUrl, (list = []));
    list.push(r);
  }
  const sets: ResourceSet[] = [];
  for (const [t, list] of byType) {
    const s = resourceSet(t, list);
    if (!s.ok) return s;
    sets.push(s.value);
  }
  return snapshotOf(sets);
}

/** Builds a snapshot from one resource set per type. */
export function snapshotOf(sets: readonly ResourceSet[]): Result<Snapshot> {
  const byType = new Map<TypeUrl, ResourceSet>();
  for (const s of sets) {
    if (byType.has(s.typeUrl)) return err(`two resource sets of type ${s.typeUrl}`);
    byType.set(s.typeUrl, s);
  }
  const types = [...byType.keys()].sort();
  const version = shortHash(types.map((t) => `${t}=${byType.get(t)!.version()}`).join('\n'));
  let dangling: readonly (ResourceRef & { readonly from: string })[] | undefined;
  return ok({
    version,
    resources: (t) => byType.get(t)?.resources ?? empty,
    set: (t) => byType.get(t),
    typeVersion: (t) => byType.get(t)?.version() ?? EMPTY_VERSION,
    typeUrls: () => types,
    // Computed once: the same snapshot may be published to several streams of one proxy.
    danglingReferences: () => (dangling ??= findDangling(byType)),
  });
}

function findDangling(byType: ReadonlyMap<TypeUrl, ResourceSet>) {
  const out: (ResourceRef & { from: string })[] = [];
  for (const set of byType.values())
    for (const r of set.resources.values())
      for (const ref of r.refs) if (!byType.get(ref.typeUrl)?.resources.has(ref.name)) out.push({ ...ref, from: r.name });
  return out;
}

/** The version of a set of resources: a hash of their sorted names and versions. */
export function versionOf(resources: Iterable<EncodedResource>): string {
  const lines: string[] = [];
  for (const r of resources) lines.push(`${r.name}@${r.version()}`);
  return shortHash(lines.sort().join('\n'));
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
