// The CA state store in etcd. The record is one key (<prefix>ca/state) changed only by a
// transaction that compares its mod revision (compare-and-swap); every replica watches it.
// Issuance records are one key each (<prefix>ca/issued/<serial>), so appends from several
// replicas never collide; they are written behind (queued, retried until etcd answers) so that
// issuance continues from the loaded CA while etcd is away. Private keys in the record are
// sealed with the operator's key (sealing.ts) and never reach etcd in the clear.
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { err, ok } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import { silentLogger } from '../observability/index.js';
import type { Logger } from '../observability/index.js';
import { caError, isIssuanceRecord, parseCaRecord } from '../ca/index.js';
import type { CaError, CaRecord, CaStateStore, IssuanceRecord, StoreHealth, StoreProblem, Versioned } from '../ca/index.js';
import { describeEtcdError } from './etcd-connection.js';
import { readPrefix } from './etcd-range.js';
import { isSealed } from './sealing.js';
import type { Sealer } from './sealing.js';

/** What the etcd store needs. */
export interface EtcdCaStoreDeps {
  readonly client: Etcd3;
  /** The key prefix, ending with '/'. */
  readonly prefix: string;
  readonly sealer: Sealer;
  /** The sealing key's flag and file, for messages (e.g. '--ca-store-key /etc/meshpilot/ca-store.key'). */
  readonly sealerSource: string;
  readonly endpoints: readonly string[];
  readonly log?: Logger;
  /** Issuance records per page when reading them all (default 500; tests use a small one to read several pages). */
  readonly listPageSize?: number;
}

/** The record as etcd holds it: keys sealed, and the fingerprint of the key that sealed them. */
interface StoredRecord extends CaRecord {
  readonly sealedWith: string;
}

/** Issuance records written or removed per transaction (etcd's --max-txn-ops defaults to 128). */
const TXN_BATCH = 100;

function* take<T>(xs: Iterable<T>, n: number): Generator<T> {
  if (n <= 0) return;
  for (const x of xs) {
    yield x;
    if (--n === 0) return;
  }
}

/** Opens the CA state store under the prefix. */
export function createEtcdCaStateStore(deps: EtcdCaStoreDeps): CaStateStore {
  const { client, sealer } = deps;
  const log = deps.log ?? silentLogger;
  const stateKey = `${deps.prefix}ca/state`;
  const issuedPrefix = `${deps.prefix}ca/issued/`;
  const where = `etcd ${deps.endpoints.join(',')} key ${stateKey}`;
  const unavailable = (what: string, e: unknown): Result<never, CaError> =>
    err(caError('not-ready', `ca store unreachable (${what} at ${deps.endpoints.join(', ')}): ${describeEtcdError(e)}`));

  let reachable = true;
  let lastError: string | undefined;
  const sawFailure = (e: unknown) => {
    lastError = describeEtcdError(e);
    if (reachable) log.error('ca store unreachable', { endpoints: deps.endpoints, cause: lastError });
    reachable = false;
  };
  const sawSuccess = () => {
    if (!reachable) log.info('ca store reachable again', { endpoints: deps.endpoints });
    reachable = true;
  };

  const seal = (r: CaRecord): StoredRecord => ({
    ...r,
    roots: Object.fromEntries(
      Object.entries(r.roots).map(([id, m]) => [id, { certPem: m.certPem, keyPem: sealer.seal(m.keyPem, `ca/roots/${id}/key`) }]),
    ),
    ...(r.tokenKeyPem !== undefined ? { tokenKeyPem: sealer.seal(r.tokenKeyPem, 'ca/token-key') } : {}),
    sealedWith: sealer.fingerprint,
  });

  const decode = (kv: IKeyValue): Result<Versioned<CaRecord>, CaError> => {
    const parsed = parseCaRecord(kv.value.toString('utf8'), stateKey);
    if (!parsed.ok) return parsed;
    const stored = parsed.value as StoredRecord;
    if (stored.sealedWith !== sealer.fingerprint) {
      return err(
        caError(
          'bad-state',
          `${stateKey}: the CA keys in etcd were sealed with the key of fingerprint ${String(stored.sealedWith)}, but ${deps.sealerSource} has fingerprint ${sealer.fingerprint}: use the key file the other replicas use`,
        ),
      );
    }
    const roots: Record<string, { certPem: string; keyPem: string }> = {};
    for (const [id, m] of Object.entries(stored.roots)) {
      if (!isSealed(m.keyPem))
        return err(caError('bad-state', `${stateKey}: roots.${id}.keyPem is not sealed; refusing a key kept in the clear`));
      const k = sealer.open(m.keyPem, `ca/roots/${id}/key`);
      if (!k.ok) return err(caError('bad-state', `${stateKey}: roots.${id}.keyPem: ${k.error} (${deps.sealerSource})`));
      roots[id] = { certPem: m.certPem, keyPem: k.value };
    }
    let tokenKeyPem: string | undefined;
    if (stored.tokenKeyPem !== undefined) {
      const t = sealer.open(stored.tokenKeyPem, 'ca/token-key');
      if (!t.ok) return err(caError('bad-state', `${stateKey}: tokenKeyPem: ${t.error} (${deps.sealerSource})`));
      tokenKeyPem = t.value;
    }
    const { sealedWith: _s, tokenKeyPem: _t, ...rest } = stored;
    return ok({ value: { ...rest, roots, ...(tokenKeyPem !== undefined ? { tokenKeyPem } : {}) }, revision: kv.mod_revision });
  };

  const load = async (): Promise<Result<Versioned<CaRecord> | undefined, CaError>> => {
    let res;
    try {
      res = await client.get(stateKey).exec();
      sawSuccess();
    } catch (e) {
      sawFailure(e);
      return unavailable('load', e);
    }
    const kv = res.kvs[0];
    return kv ? decode(kv) : ok(undefined);
  };

  // Issuance records waiting to be written, by serial.
  const pending = new Map<string, IssuanceRecord>();
  let pumping: Promise<Result<void, CaError>> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let retryDelay = 250;
  let closed = false;
  const pump = (): Promise<Result<void, CaError>> =>
    (pumping ??= (async () => {
      try {
        // Records accepted while a write is in flight are taken by the next turn of this loop. Up to
        // TXN_BATCH go in one transaction: a fleet's cold start issues thousands of SVIDs, and one
        // round trip (and one fsync) each would leave the journal far behind the signer.
        while (pending.size > 0) {
          const batch = [...take(pending.values(), TXN_BATCH)];
          try {
            await client
              .if(stateKey, 'Version', '>', -1)
              .then(...batch.map((r) => client.put(issuedPrefix + r.serial).value(JSON.stringify(r))))
              .commit();
            // A record replaced while this batch was in flight stays queued, to be written next.
            for (const r of batch) if (pending.get(r.serial) === r) pending.delete(r.serial);
            sawSuccess();
            retryDelay = 250;
          } catch (e) {
            sawFailure(e);
            if (!closed && !retryTimer) {
              retryTimer = setTimeout(() => {
                retryTimer = undefined;
                void pump();
              }, retryDelay).unref();
              retryDelay = Math.min(retryDelay * 2, 5000);
            }
            return unavailable(`write ${pending.size} issuance record(s)`, e);
          }
        }
        return ok(undefined);
      } finally {
        pumping = undefined;
      }
    })());

  const watchers = new Set<Watcher>();

  return {
    where,
    load,

    async compareAndSwap(expected, next) {
      const value = JSON.stringify(seal(next));
      let res;
      try {
        const txn = expected === undefined ? client.if(stateKey, 'Create', '==', 0) : client.if(stateKey, 'Mod', '==', expected);
        res = await txn.then(client.put(stateKey).value(value)).else(client.get(stateKey)).commit();
        sawSuccess();
      } catch (e) {
        sawFailure(e);
        return unavailable('compare-and-swap', e);
      }
      if (res.succeeded) return ok({ applied: true as const, revision: res.header.revision });
      const kv = res.responses[0]?.response_range?.kvs[0];
      if (!kv) return ok({ applied: false as const, current: undefined });
      const cur = decode(kv);
      return cur.ok ? ok({ applied: false as const, current: cur.value }) : cur;
    },

    watch(onRecord, onProblem) {
      let stopped = false;
      let watcher: Watcher | undefined;
      let resync: NodeJS.Timeout | undefined;
      let lastRevision: string | undefined;
      const report = (p: StoreProblem) => {
        log.warn('ca store object skipped', { key: p.key, cause: p.message });
        onProblem?.(p);
      };
      void client
        .watch()
        .key(stateKey)
        .create()
        .then((w) => {
          if (stopped) {
            void w.cancel();
            return;
          }
          watcher = w;
          watchers.add(w);
          w.on('put', (kv) => {
            const r = decode(kv);
            if (r.ok) onRecord(r.value);
            else report({ key: stateKey, message: r.error.message });
          });
          // The client reconnects a broken watch with a backoff that grows to 30 s. Meanwhile a
          // read every second catches a change as soon as etcd answers again (the watcher's
          // owner ignores revisions it already has).
          const poll = () => {
            if (resync) return;
            resync = setInterval(() => {
              void load().then((r) => {
                if (r.ok && r.value && r.value.revision !== lastRevision) {
                  lastRevision = r.value.revision;
                  onRecord(r.value);
                }
              });
            }, 1000).unref();
          };
          w.on('put', (kv) => (lastRevision = kv.mod_revision));
          w.on('disconnected', (e) => {
            sawFailure(e);
            poll();
          });
          w.on('connected', () => {
            sawSuccess();
            if (resync) clearInterval(resync);
            resync = undefined;
          });
          w.on('error', (e) => {
            sawFailure(e);
            poll();
          });
        })
        .catch((e: unknown) => report({ key: stateKey, message: `watch failed: ${describeEtcdError(e)}` }));
      return () => {
        stopped = true;
        if (resync) clearInterval(resync);
        if (watcher) {
          watchers.delete(watcher);
          void watcher.cancel();
        }
      };
    },

    appendIssued(r) {
      if (closed) return err(caError('not-ready', 'ca store is closed'));
      pending.set(r.serial, r);
      void pump();
      return ok(undefined);
    },

    flush: () => (pending.size === 0 ? Promise.resolve(ok(undefined)) : pump()),

    async loadIssued() {
      let kvs: readonly IKeyValue[];
      try {
        ({ kvs } = await readPrefix(client, issuedPrefix, deps.listPageSize));
        sawSuccess();
      } catch (e) {
        sawFailure(e);
        return unavailable('load issuance records', e);
      }
      const records: IssuanceRecord[] = [...pending.values()];
      const skipped: StoreProblem[] = [];
      for (const kv of kvs) {
        const key = kv.key.toString('utf8');
        let v: unknown;
        try {
          v = JSON.parse(kv.value.toString('utf8'));
        } catch {
          v = undefined;
        }
        if (isIssuanceRecord(v) && key === issuedPrefix + v.serial) {
          if (!pending.has(v.serial)) records.push(v);
        } else {
          const p = { key, message: 'not a valid issuance record (corrupt or foreign object)' };
          log.warn('ca store object skipped', { key, cause: p.message });
          skipped.push(p);
        }
      }
      return ok({ records, skipped });
    },

    async removeIssued(serials) {
      try {
        // One transaction of deletes per chunk: etcd limits the operations in a transaction.
        for (let i = 0; i < serials.length; i += TXN_BATCH) {
          const chunk = serials.slice(i, i + TXN_BATCH);
          await client
            .if(stateKey, 'Version', '>', -1)
            .then(...chunk.map((s) => client.delete().key(issuedPrefix + s)))
            .commit();
        }
        sawSuccess();
        return ok(undefined);
      } catch (e) {
        sawFailure(e);
        return unavailable('remove issuance records', e);
      }
    },

    health: (): StoreHealth => ({ reachable, pendingRecords: pending.size, ...(lastError !== undefined ? { lastError } : {}) }),

    close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      for (const w of watchers) void w.cancel();
      watchers.clear();
    },
  };
}
