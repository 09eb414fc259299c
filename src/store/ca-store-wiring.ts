// What `serve --ca-store etcd` opens: one etcd client, the CA state store on it, and the
// campaign for the CA singletons. Closed together.
import type { Etcd3 } from 'etcd3';
import { err, ok } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import type { CaStateStore, RotationStore } from '../ca/index.js';
import { connectEtcd } from './etcd-connection.js';
import type { EtcdConnectionConfig } from './etcd-connection.js';
import { createEtcdCaStateStore } from './etcd-ca-store.js';
import { createEtcdLeadership } from './etcd-leadership.js';
import { createEtcdRotationStore } from './etcd-rotation-store.js';
import type { Leadership } from './etcd-leadership.js';
import { createSealer } from './sealing.js';

/** The election of the CA singletons (CRL schedule, pruning, the gated root rotation). */
const ELECTION = 'ca-singletons';

/** The etcd CA store settings, checked by the CLI. */
export interface EtcdCaStoreOptions {
  readonly connection: EtcdConnectionConfig;
  /** The 32-byte sealing key read from the key file. */
  readonly sealingKey: Buffer;
  /** The flag and file it came from, for messages. */
  readonly sealingKeySource: string;
  /** Lease TTL of the singleton campaign (default 10 s). */
  readonly leaseTtlSeconds?: number;
}

/** An opened etcd CA store with its singleton campaign. */
export interface OpenedCaStore {
  readonly store: CaStateStore;
  readonly leadership: Leadership;
  /** The gated root rotation's record and the replicas' reports on it. */
  readonly rotations: RotationStore;
  readonly candidate: string;
  close(): Promise<void>;
}

/** The CA state store on an open etcd client, as the --ca-store flags describe it. */
export function caStateStoreOn(client: Etcd3, o: EtcdCaStoreOptions, log: Logger): CaStateStore {
  return createEtcdCaStateStore({
    client,
    prefix: o.connection.prefix,
    sealer: createSealer(o.sealingKey),
    sealerSource: o.sealingKeySource,
    endpoints: o.connection.endpoints,
    log: log.child({ module: 'ca-store' }),
  });
}

/** Connects to etcd (failing with the endpoints named when it does not answer) and opens the store and the campaign. */
export async function openEtcdCaStore(o: EtcdCaStoreOptions, candidate: string, log: Logger): Promise<Result<OpenedCaStore>> {
  const conn = await connectEtcd(o.connection);
  if (!conn.ok) return err(conn.error);
  const client = conn.value;
  const store = caStateStoreOn(client, o, log);
  const leadership = createEtcdLeadership({
    client,
    prefix: o.connection.prefix,
    name: ELECTION,
    candidate,
    ...(o.leaseTtlSeconds !== undefined ? { ttlSeconds: o.leaseTtlSeconds } : {}),
    log: log.child({ module: 'leadership' }),
  });
  const rotations = createEtcdRotationStore({
    client,
    electionName: ELECTION,
    prefix: o.connection.prefix,
    endpoints: o.connection.endpoints,
    ...(o.leaseTtlSeconds !== undefined ? { ttlSeconds: o.leaseTtlSeconds } : {}),
  });
  return ok({
    store,
    leadership,
    rotations,
    candidate,
    async close() {
      await leadership.close();
      await rotations.close();
      store.close();
      client.close();
    },
  });
}

/** What a sidecar bootstrap needs from the shared CA: the trust domain, the roots and the token key. */
export interface SharedTrust {
  readonly trustDomain: string;
  readonly rootsPem: string;
  readonly tokenKeyPem: string;
}

/** Reads the trust a bootstrap needs from the CA kept in etcd (made by the first `serve --ca-store etcd`). */
export async function readSharedTrust(o: EtcdCaStoreOptions): Promise<Result<SharedTrust>> {
  const conn = await connectEtcd(o.connection);
  if (!conn.ok) return err(conn.error);
  const store = createEtcdCaStateStore({
    client: conn.value,
    prefix: o.connection.prefix,
    sealer: createSealer(o.sealingKey),
    sealerSource: o.sealingKeySource,
    endpoints: o.connection.endpoints,
  });
  try {
    const r = await store.load();
    if (!r.ok) return err(r.error.message);
    if (!r.value) return err(`${store.where}: no CA there yet: start 'meshpilot serve --ca-store etcd' first`);
    const rec = r.value.value;
    if (rec.mode !== 'self-signed')
      return err(`${store.where}: a plug-in CA's root lives in its files: bootstrap with --state-dir of a replica`);
    if (rec.tokenKeyPem === undefined) return err(`${store.where}: holds no token signing key yet: start a replica first`);
    return ok({
      trustDomain: rec.trustDomain,
      rootsPem: rec.issuers.map((id) => rec.roots[id]!.certPem).join(''),
      tokenKeyPem: rec.tokenKeyPem,
    });
  } finally {
    store.close();
    conn.value.close();
  }
}
