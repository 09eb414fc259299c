// The parent's handle on a fleet of simulated clients running in a child process.
import { forkChild, type Child } from './child.js';
import type { FleetCommand, FleetStats } from './fleet-protocol.js';

/** A child process of simulated clients. */
export type Fleet = Child<FleetCommand, FleetStats>;

/** Forks fleet-child.js (beside this file) and waits until it answers. */
export async function startFleet(): Promise<Fleet> {
  // The child is an ordinary Node process (no --expose-gc); BENCH_FLEET_NODE_ARGS passes
  // flags to it, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof' to see where client time goes.
  const execArgv = (process.env.BENCH_FLEET_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const fleet = forkChild<FleetCommand, FleetStats>(new URL('./fleet-child.js', import.meta.url), { execArgv });
  await fleet.send({ cmd: 'stats' });
  return fleet;
}
