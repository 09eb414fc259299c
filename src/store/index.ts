export {
  addEtcdConnectionOptions,
  connectEtcd,
  createEtcdClient,
  DEFAULT_ETCD_PREFIX,
  describeEtcdError,
  parseEtcdConnection,
} from './etcd-connection.js';
export type { EtcdClientOptions, EtcdConnectionConfig, EtcdConnectionFlags } from './etcd-connection.js';
