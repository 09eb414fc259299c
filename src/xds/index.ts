export { createXdsServer } from './server.js';
export type { XdsServer } from './server.js';
export { SotwStream } from './sotw-stream.js';
export { DeltaStream } from './delta-stream.js';
export { defaultLimits, StreamError } from './types.js';
export type { ProxyInfo, XdsHooks, XdsLimits } from './types.js';
export { createGrpcServer, listen, listenGuarded, shutdown, MAX_RECEIVE_BYTES } from './grpc-server.js';
export type { CallConnection, GrpcServerOptions, GuardedListener } from './grpc-server.js';
