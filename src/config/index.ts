// Loads and watches the YAML config and parses it into the mesh model, reporting every problem.
export type { ConfigDiagnostic } from './diagnostics.js';
export { hasErrors } from './diagnostics.js';
export type { LoadResult, ConfigText } from './build-model.js';
export { parseConfigText, parseConfigFiles } from './build-model.js';
export type { LoadOptions } from './load.js';
export { loadConfig, resolveConfigFiles, isConfigFileName } from './load.js';
export { ACCEPTED_KINDS } from './parse-document.js';
export type { ConfigSource, FileConfigSourceOptions, Timers } from './file-source.js';
export { createFileConfigSource } from './file-source.js';
export { bootSettingChanges } from './boot-settings.js';
export type { ConfigLimits } from './limits.js';
export { CONFIG_LIMITS, DEFAULT_CONFIG_LIMITS } from './limits.js';
export { analyzeModel } from './analyze.js';
export type {
  ConfigObjectStore,
  StoredObject,
  StoreEvent,
  StoreListing,
  StoreWatchHandlers,
  StoreCommit,
  CommitResult,
  WatchEnd,
} from './object-store.js';
export { createMemoryObjectStore, type MemoryObjectStore } from './memory-object-store.js';
export { createEtcdObjectStore, type EtcdObjectStoreOptions } from './etcd-object-store.js';
export { createStoreConfigSource, type StoreConfigSource, type StoreConfigSourceOptions, type StoreStatus } from './store-source.js';
export { applyToStore, deleteFromStore, type StoreWriteOptions, type StoreWriteResult } from './store-apply.js';
export { keyOf, parseKey, resolveKind, objectsToStore, CLUSTER_SCOPED, type ObjectIdentity } from './stored-object.js';
