export { createNodeAgent, defaultAgentRenewal } from './agent.js';
export type { AgentStatus, NodeAgent } from './agent.js';
export { backoffDelay, defaultBackoff } from './backoff.js';
export type { BackoffPolicy } from './backoff.js';
export { acceptChain } from './issued.js';
export type { AgentSvid } from './issued.js';
export { sdsSnapshot } from './sds.js';
export type { SdsContent } from './sds.js';
