export { createXdsServer } from './server.js';
export type { XdsServer } from './server.js';
export { SotwStream } from './sotw-stream.js';
export { DeltaStream } from './delta-stream.js';
export { defaultLimits, StreamError } from './types.js';
export type { ProxyInfo, XdsHooks, XdsLimits } from './types.js';
export { createGrpcServer, listen, shutdown, MAX_RECEIVE_BYTES } from './grpc-server.js';
