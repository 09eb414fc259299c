// A flood must not become a log flood: the first event of a burst is logged at once, the rest
// are counted and summed up in one line when the burst has been quiet for a window.
import type { LogFields, Logger } from '../observability/index.js';
import type { Timers } from './timers.js';

/** Logs bursts of one kind of event as one line each, not one per event. */
export interface BurstLog {
  record(fields: LogFields): void;
  close(): void;
}

/**
 * Creates a burst logger: `msg` with the first event's fields at once; then, once `windowMs` passes,
 * one `msg` line with `count` of the events that followed (none if none did), and the window restarts.
 */
export function createBurstLog(deps: { log: Logger; msg: string; windowMs: number; timers: Timers }): BurstLog {
  let timer: unknown;
  let following = 0;
  let last: LogFields = {};
  const flush = () => {
    timer = undefined;
    if (following === 0) return;
    deps.log.warn(deps.msg, { ...last, count: following, windowMs: deps.windowMs, summary: true });
    following = 0;
    // A flood still going on keeps one line per window.
    timer = deps.timers.setTimeout(flush, deps.windowMs);
  };
  return {
    record(fields) {
      last = fields;
      if (timer === undefined) {
        deps.log.warn(deps.msg, { ...fields, count: 1 });
        timer = deps.timers.setTimeout(flush, deps.windowMs);
        return;
      }
      following++;
    },
    close() {
      deps.timers.clearTimeout(timer);
      timer = undefined;
      if (following > 0) deps.log.warn(deps.msg, { ...last, count: following, windowMs: deps.windowMs, summary: true });
      following = 0;
    },
  };
}
