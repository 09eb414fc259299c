export {
  addEtcdConnectionOptions,
  connectEtcd,
  createEtcdClient,
  DEFAULT_ETCD_PREFIX,
  describeEtcdError,
  parseEtcdConnection,
} from './etcd-connection.js';
export type { EtcdClientOptions, EtcdConnectionConfig, EtcdConnectionFlags } from './etcd-connection.js';
export { caStateStoreOn, openEtcdCaStore, readSharedTrust } from './ca-store-wiring.js';
export type { EtcdCaStoreOptions, OpenedCaStore, SharedTrust } from './ca-store-wiring.js';
export { createEtcdCaStateStore } from './etcd-ca-store.js';
export { createEtcdLeadership, soleLeadership } from './etcd-leadership.js';
export type { Leadership } from './etcd-leadership.js';
export { createSealer, isSealed, readSealingKeyFile } from './sealing.js';
export type { Sealer } from './sealing.js';
export { addCaStoreOptions, parseCaStoreFlags } from './etcd-connection.js';
export type { CaStoreFlags, EtcdCaStoreSettings } from './etcd-connection.js';
export { createEtcdRotationStore } from './etcd-rotation-store.js';
export { prefixEnd, readPrefix } from './etcd-range.js';
