export { createConnectionGuard } from './connection-guard.js';
export type { ConnectionAddress, ConnectionGuard, ConnectionLimits, GuardReason, GuardStats } from './connection-guard.js';
export { createBurstLog } from './burst-log.js';
export type { BurstLog } from './burst-log.js';
export { defaultMaxConnections, parseFdLimit, raiseFdLimit, readFdLimit } from './fd-limit.js';
export type { FdLimit, FdLimitReport } from './fd-limit.js';
export type { Timers } from './timers.js';
