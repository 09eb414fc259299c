// pilot_proxy_convergence_time as meshpilot can measure it: from the first event that
// opened a debounce window to the end of the push that window produced. Events arriving
// while a window is open do not restart the clock, as in Istio (the oldest change counts).
import type { Clock } from '../lib/index.js';

/** Marks when a debounce window opened and reports how long it took to push. */
export interface ConvergenceTimer {
  /** An event was requested: opens a window unless one is open. */
  requested(): void;
  /** A push finished: returns seconds since the window opened (undefined when none was open) and closes it. */
  pushed(): number | undefined;
}

/** Creates a convergence timer; `active` says whether a push will follow (no proxy connected: none will). */
export function createConvergenceTimer(clock: Clock, opts: { active?: () => boolean } = {}): ConvergenceTimer {
  let openedAt: number | undefined;
  return {
    requested() {
      if (openedAt === undefined && (opts.active?.() ?? true)) openedAt = clock.now();
    },
    pushed() {
      if (openedAt === undefined) return undefined;
      const s = (clock.now() - openedAt) / 1000;
      openedAt = undefined;
      return s;
    },
  };
}
