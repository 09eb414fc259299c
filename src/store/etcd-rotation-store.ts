// The gated root rotation in etcd: the record at <prefix>ca/rotation (changed by compare-and-swap
// on its mod revision, like the CA record beside it), and one report per replica at
// <prefix>ca/rotation-acks/<replica>, attached to a lease this replica keeps alive: when the
// replica dies its report goes with the lease, and the leader's gates stop waiting for it.
import type { Etcd3, Lease } from 'etcd3';
import { err, ok } from '../lib/index.js';
import { parseAckReport, parseRotationRecord } from '../ca/index.js';
import type { AckReport, RotationStore } from '../ca/index.js';
import { describeEtcdError } from './etcd-connection.js';

export function createEtcdRotationStore(deps: {
  readonly client: Etcd3;
  readonly prefix: string;
  readonly endpoints: readonly string[];
  /** The election every replica campaigns in (its candidates are the live replicas). */
  readonly electionName: string;
  /** TTL of the report lease (default 10 s, the election's). */
  readonly ttlSeconds?: number;
}): RotationStore {
  const { client } = deps;
  const recordKey = `${deps.prefix}ca/rotation`;
  const acksPrefix = `${deps.prefix}ca/rotation-acks/`;
  const unavailable = (what: string, e: unknown) =>
    err(`ca store unreachable (${what} at ${deps.endpoints.join(', ')}): ${describeEtcdError(e)}`);
  let lease: Lease | undefined;
  const currentLease = (): Lease => {
    if (lease && !lease.revoked()) return lease;
    const l = client.lease(deps.ttlSeconds ?? 10);
    // A lease lost (etcd away past its TTL) is replaced at the next report.
    l.on('lost', () => {
      if (lease === l) lease = undefined;
    });
    lease = l;
    return l;
  };
  return {
    where: `etcd ${deps.endpoints.join(',')} key ${recordKey}`,
    async load() {
      try {
        const res = await client.get(recordKey).exec();
        const kv = res.kvs[0];
        if (!kv) return ok(undefined);
        const r = parseRotationRecord(kv.value.toString('utf8'), recordKey);
        return r.ok ? ok({ value: r.value, revision: kv.mod_revision }) : r;
      } catch (e) {
        return unavailable('load rotation', e);
      }
    },
    async compareAndSwap(expected, next) {
      try {
        const txn = expected === undefined ? client.if(recordKey, 'Create', '==', 0) : client.if(recordKey, 'Mod', '==', expected);
        const res = await txn.then(client.put(recordKey).value(JSON.stringify(next))).commit();
        return ok(res.succeeded);
      } catch (e) {
        return unavailable('write rotation', e);
      }
    },
    async publish(report) {
      try {
        await currentLease()
          .put(`${acksPrefix}${encodeURIComponent(report.replica)}`)
          .value(JSON.stringify(report));
        return ok(undefined);
      } catch (e) {
        lease = undefined;
        return unavailable('publish rotation report', e);
      }
    },
    async reports() {
      try {
        const texts = await client.getAll().prefix(acksPrefix).strings();
        return ok(Object.values(texts).flatMap((t) => parseAckReport(t) ?? []) as AckReport[]);
      } catch (e) {
        return unavailable('read rotation reports', e);
      }
    },
    async replicas() {
      try {
        // The election keeps one key per campaigning replica (<prefix>election/<name>/<lease>), its value the candidate.
        const texts = await client.getAll().prefix(`${deps.prefix}election/${deps.electionName}/`).strings();
        return ok([...new Set(Object.values(texts))]);
      } catch (e) {
        return unavailable('read the replicas of the election', e);
      }
    },
    async close() {
      const l = lease;
      lease = undefined;
      // Revoked: the report goes at once instead of after the TTL.
      if (l) await l.revoke().catch(() => undefined);
    },
  };
}
