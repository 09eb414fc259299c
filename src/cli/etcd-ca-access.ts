// `meshpilot ca init|show|bundle|issue|revoke --ca-store etcd`: the CA that replicas share in etcd,
// opened by one command without a running replica. A command is not a replica: it joins no
// election (CRL schedule and pruning stay with the replicas), it writes only through the store's
// compare-and-swap, and the replicas see its change through their watch and push it.
import type { Command } from 'commander';
import { err, ok } from '../lib/index.js';
import type { Clock, Result } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import { openSharedCa } from '../ca/index.js';
import type { CertificateAuthority } from '../ca/index.js';
import type { TrustDomain } from '../identity/index.js';
import { addCaStoreOptions, caStateStoreOn, connectEtcd, parseCaStoreFlags } from '../store/index.js';
import type { CaStoreFlags, EtcdCaStoreSettings } from '../store/index.js';

/** Where a CA command finds the CA: a state directory, or the store replicas share. */
export type CaLocation =
  { readonly kind: 'dir'; readonly stateDir: string } | { readonly kind: 'etcd'; readonly settings: EtcdCaStoreSettings };

/** Adds --state-dir (now optional) with --ca-store, --ca-store-key and the --etcd-* flags. */
export function addCaLocationOptions(cmd: Command, stateDirHelp: string): Command {
  cmd.option('--state-dir <dir>', stateDirHelp);
  return addCaStoreOptions(cmd);
}

/** Reads the location flags; every problem names its flag and the fix. */
export function parseCaLocation(flags: CaStoreFlags & { readonly stateDir?: string }): Result<CaLocation> {
  const store = parseCaStoreFlags(flags);
  if (!store.ok) return store;
  if (store.value) {
    if (flags.stateDir !== undefined)
      return err('--state-dir: not used with --ca-store etcd (the CA lives in etcd); give one or the other');
    return ok({ kind: 'etcd', settings: store.value });
  }
  if (flags.stateDir === undefined) return err('give --state-dir DIR, or --ca-store etcd with --ca-store-key and the --etcd-* flags');
  return ok({ kind: 'dir', stateDir: flags.stateDir });
}

/** How a command opens the etcd CA. */
export interface EtcdCaOpen {
  /** Create the CA when the store holds none (ca init); otherwise an empty store is refused. */
  readonly create: boolean;
  /** Checked against the stored CA's (and used when creating one). */
  readonly trustDomain?: TrustDomain;
  /** The plug-in files, for a plug-in CA: its signing key is never in the store. */
  readonly pluginDir?: string;
  readonly clock: Clock;
  readonly log: Logger;
}

/** What the command is told besides the CA. */
export interface EtcdCaOpened {
  /** This command created the CA. */
  readonly created: boolean;
  /** The store, for messages: 'etcd https://a:2379 key /meshpilot/ca/state'. */
  readonly where: string;
}

/**
 * Opens the shared CA in etcd, runs f, then waits until every issuance record it wrote is in etcd
 * and closes everything. Without `create`, an empty store is refused (naming where and the fix)
 * instead of creating a CA there.
 */
export async function withEtcdCa<T>(
  settings: EtcdCaStoreSettings,
  o: EtcdCaOpen,
  f: (ca: CertificateAuthority, opened: EtcdCaOpened) => T | Promise<T>,
): Promise<Result<T>> {
  const conn = await connectEtcd(settings.connection);
  if (!conn.ok) return conn;
  const client = conn.value;
  const store = caStateStoreOn(client, settings, o.log);
  try {
    const before = await store.load();
    if (!before.ok) return err(before.error.message);
    if (!before.value && !o.create)
      return err(
        `no CA in ${store.where} yet: create it with meshpilot ca init --ca-store etcd (or start a replica with serve --ca-store etcd)`,
      );
    const opened = await openSharedCa({
      store,
      clock: o.clock,
      log: o.log,
      // Replicas hold the singleton lease; a command never runs the CRL schedule or pruning.
      isLeader: () => false,
      ...(o.trustDomain ? { trustDomain: o.trustDomain } : {}),
      ...(o.pluginDir !== undefined ? { pluginDir: o.pluginDir } : {}),
    });
    if (!opened.ok) return err(opened.error.message);
    const ca = opened.value.ca;
    try {
      const value = await f(ca, { created: !before.value, where: store.where });
      const flushed = await store.flush();
      if (!flushed.ok) return err(flushed.error.message);
      return ok(value);
    } finally {
      ca.close();
    }
  } finally {
    store.close();
    client.close();
  }
}
