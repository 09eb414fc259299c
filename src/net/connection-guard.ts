// Admission of TCP connections on one listening port, before TLS or HTTP sees them: a cap on
// open connections for the listener and for each source address, and a deadline by which a
// connection must have made its first request (TLS handshake and HTTP/2 preface included).
// Without these, idle connections hold file descriptors until the process runs out and every
// port fails at once (issue 17, item 4). Refusals and idle closes are counted and logged, one
// line per burst.
import type { Socket } from 'node:net';
import type { Logger } from '../observability/index.js';
import { createBurstLog, type BurstLog } from './burst-log.js';
import type { Timers } from './timers.js';

/** The limits of one listener. */
export interface ConnectionLimits {
  /** Open connections the listener keeps at most; more are closed at accept. */
  readonly maxConnections: number;
  /** Open connections one source address keeps at most. */
  readonly maxPerSource: number;
  /** Time from accept to the first request (TLS handshake and HTTP/2 preface included); after it the connection is closed. */
  readonly firstRequestTimeoutMs: number;
}

/** Why a connection was closed by the guard. */
export type GuardReason = 'listener-limit' | 'source-limit' | 'no-request' | 'accept-error';

/** The address pair that names a connection, as node:net reports it. */
export interface ConnectionAddress {
  readonly remoteAddress?: string;
  readonly remotePort?: number;
}

/** What the guard reports, for metrics. */
export interface GuardStats {
  closed(reason: GuardReason): void;
  /** Open connections changed (the gauge). */
  open?(n: number): void;
}

/** Guards one listener. */
export interface ConnectionGuard {
  /** Takes a just-accepted connection: true to serve it, false when it was closed (a cap bit). */
  admit(socket: Socket): boolean;
  /** The connection made a request: its first-request deadline no longer applies. */
  requested(address: ConnectionAddress): void;
  /** Closes a connection (its TLS session ends; the peer reconnects): after a stream ended for the connection's client certificate. */
  closeConnection(address: ConnectionAddress): void;
  /** accept(2) failed (EMFILE, ENFILE): the connection never reached us; counted and logged per burst. */
  acceptFailed(e: Error): void;
  /** Open connections now. */
  open(): number;
  close(): void;
}

const keyOf = (a: ConnectionAddress) => `${a.remoteAddress ?? '?'}|${a.remotePort ?? 0}`;

/** Creates the guard of one listener (`listener` names it in logs and metrics). */
export function createConnectionGuard(deps: {
  listener: string;
  limits: ConnectionLimits;
  log: Logger;
  timers: Timers;
  stats?: GuardStats;
  /** The window a burst of refusals is summed up over (default 10 s). */
  burstWindowMs?: number;
}): ConnectionGuard {
  const { limits } = deps;
  const open = new Map<string, { socket: Socket; timer?: unknown }>();
  const perSource = new Map<string, number>();
  const windowMs = deps.burstWindowMs ?? 10_000;
  // One burst log per reason, so that a summary line counts one kind of refusal.
  const burst = (msg: string) => createBurstLog({ log: deps.log, msg, windowMs, timers: deps.timers });
  const logs: Record<GuardReason, BurstLog> = {
    'listener-limit': burst('connections refused'),
    'source-limit': burst('connections refused'),
    'no-request': burst('idle connections closed'),
    'accept-error': burst('accept failed'),
  };
  const fields = (reason: GuardReason, source: string) => ({
    listener: deps.listener,
    reason,
    source,
    open: open.size,
    limits: { maxConnections: limits.maxConnections, maxPerSource: limits.maxPerSource },
  });

  const release = (key: string, source: string) => {
    const entry = open.get(key);
    if (!entry) return;
    deps.timers.clearTimeout(entry.timer);
    open.delete(key);
    const n = (perSource.get(source) ?? 1) - 1;
    if (n <= 0) perSource.delete(source);
    else perSource.set(source, n);
    deps.stats?.open?.(open.size);
  };

  return {
    admit(socket) {
      const source = socket.remoteAddress ?? '?';
      const reason: GuardReason | undefined =
        open.size >= limits.maxConnections
          ? 'listener-limit'
          : (perSource.get(source) ?? 0) >= limits.maxPerSource
            ? 'source-limit'
            : undefined;
      if (reason) {
        // resetAndDestroy: an RST frees the descriptor now, where a FIN would wait on the peer.
        socket.resetAndDestroy();
        deps.stats?.closed(reason);
        logs[reason].record(fields(reason, source));
        return false;
      }
      const key = keyOf(socket);
      const timer = deps.timers.setTimeout(() => {
        if (!open.has(key)) return;
        deps.stats?.closed('no-request');
        logs['no-request'].record({ ...fields('no-request', source), timeoutMs: limits.firstRequestTimeoutMs });
        socket.destroy();
        release(key, source);
      }, limits.firstRequestTimeoutMs);
      open.set(key, { socket, timer });
      perSource.set(source, (perSource.get(source) ?? 0) + 1);
      deps.stats?.open?.(open.size);
      socket.once('close', () => release(key, source));
      return true;
    },
    requested(address) {
      const entry = open.get(keyOf(address));
      if (entry?.timer !== undefined) {
        deps.timers.clearTimeout(entry.timer);
        entry.timer = undefined;
      }
    },
    closeConnection(address) {
      const entry = open.get(keyOf(address));
      if (!entry) return;
      // After the status already queued on it: end() sends what is written, then FIN; a peer that
      // does not close its side is cut off by the deadline below.
      const socket = entry.socket;
      setImmediate(() => socket.end());
      deps.timers.setTimeout(() => socket.destroy(), 2_000);
    },
    acceptFailed(e) {
      deps.stats?.closed('accept-error');
      logs['accept-error'].record({ listener: deps.listener, reason: 'accept-error', cause: e.message, open: open.size });
    },
    open: () => open.size,
    close() {
      for (const e of open.values()) deps.timers.clearTimeout(e.timer);
      for (const l of Object.values(logs)) l.close();
    },
  };
}
