// One replica at a time runs the singletons (CRL re-signing schedule, pruning of the shared
// CA state): the one whose campaign in an etcd election holds the lease. The lease is kept
// alive by this process; when it dies, or loses etcd, the lease expires after its TTL and
// another replica's campaign wins. A replica that loses its lease stops leading at once.
import type { Campaign, Etcd3 } from 'etcd3';
import { silentLogger } from '../observability/index.js';
import type { Logger } from '../observability/index.js';
import { describeEtcdError } from './etcd-connection.js';

/** Whether this process runs the singletons now. */
export interface Leadership {
  isLeader(): boolean;
  /** Called with true when this replica becomes the leader and false when it stops being it. */
  onChange(cb: (leader: boolean) => void): () => void;
  /** Resigns (another replica takes over at once) and stops campaigning. */
  close(): Promise<void>;
}

/** The single process (state directory, memory): always the leader. */
export const soleLeadership: Leadership = {
  isLeader: () => true,
  onChange: () => () => {},
  close: () => Promise.resolve(),
};

/** Campaigns for leadership of `name` under the prefix, for as long as it is open. */
export function createEtcdLeadership(deps: {
  readonly client: Etcd3;
  readonly prefix: string;
  readonly name: string;
  /** This replica's name, as other replicas see it as leader (e.g. its xDS address). */
  readonly candidate: string;
  /** Lease TTL: how long a dead leader's singletons stay unowned (default 10 s). */
  readonly ttlSeconds?: number;
  /** Wait before campaigning again after the campaign failed (default 1 s). */
  readonly retryMs?: number;
  readonly log?: Logger;
}): Leadership {
  const log = deps.log ?? silentLogger;
  // Under our prefix: <prefix>election/<name>/<lease id>.
  const election = deps.client.namespace(deps.prefix).election(deps.name, deps.ttlSeconds ?? 10);
  const listeners = new Set<(leader: boolean) => void>();
  let leader = false;
  let closed = false;
  let campaign: Campaign | undefined;
  let retry: NodeJS.Timeout | undefined;

  const set = (v: boolean) => {
    if (v === leader) return;
    leader = v;
    log.info(v ? 'leadership acquired' : 'leadership lost', { election: deps.name, candidate: deps.candidate });
    for (const cb of listeners) cb(v);
  };

  const start = () => {
    if (closed) return;
    const c = election.campaign(deps.candidate);
    campaign = c;
    c.on('elected', () => {
      if (campaign === c && !closed) set(true);
    });
    c.on('error', (e: Error) => {
      if (campaign !== c) return;
      // The lease is gone (etcd unreachable past its TTL, or revoked): stop leading, campaign again.
      set(false);
      log.warn('leadership campaign failed; retrying', { election: deps.name, cause: describeEtcdError(e) });
      campaign = undefined;
      if (!closed) retry = setTimeout(start, deps.retryMs ?? 1000).unref();
    });
  };
  start();

  return {
    isLeader: () => leader,
    onChange(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      const c = campaign;
      campaign = undefined;
      set(false);
      if (c) await c.resign().catch(() => undefined);
    },
  };
}
