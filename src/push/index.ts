export { createMeshSnapshots } from './mesh-snapshots.js';
export type { MeshSnapshots, InboundPolicySource } from './mesh-snapshots.js';
export { createDebouncer } from './debouncer.js';
