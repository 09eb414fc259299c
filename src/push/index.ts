export { createPushController } from './controller.js';
export type { PushController, InboundPolicySource, PushStats, ConnectedProxy } from './controller.js';
export { admitProxy, identityOf, MAX_NODE_ID_LENGTH } from './admission.js';
export type { AdmittedProxy } from './admission.js';
export { createDebouncer } from './debouncer.js';
