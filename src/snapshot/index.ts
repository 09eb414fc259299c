export { EncodedResource, encodedResource, encodingCount } from './encoded-resource.js';
export type { ResourceRef, Encoder } from './encoded-resource.js';
export { createSnapshot, snapshotOf, resourceSet, describeSnapshot, versionOf } from './snapshot.js';
export type { Snapshot, ResourceSet } from './snapshot.js';
export { createSnapshotCache } from './snapshot-cache.js';
export type { SnapshotCache, SnapshotSource, ProxyKey, WatchRefusal } from './snapshot-cache.js';
