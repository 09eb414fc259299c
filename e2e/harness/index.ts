// The real-Envoy e2e harness: start and inspect Envoy processes, test upstreams, HTTP, polling and ports.
export { startEnvoy, resolveEnvoyBin, validateEnvoyConfig, ENVOY_VERSION } from './envoy.js';
export type { EnvoyProcess, EnvoyExit, StartEnvoyOptions } from './envoy.js';
export { envoyPool, registerEnvoyCleanup } from './pool.js';
export type { EnvoyPool, TestOutcome } from './pool.js';
export { startHttpUpstream, startTcpEcho } from './upstreams.js';
export type { HttpUpstream, TcpEcho, UpstreamAnswer } from './upstreams.js';
export { httpRequest } from './http-client.js';
export type { HttpRequestOptions, HttpResponse } from './http-client.js';
export { eventually } from './eventually.js';
export type { EventuallyOptions } from './eventually.js';
export { freePort, loopbackUsable, portOpen, hostPort } from './net.js';
export { adsBootstrap, staticProxyBootstrap, XDS_CLUSTER } from './bootstrap.js';
export type { AdsBootstrapOptions, StaticProxyOptions, XdsTlsOptions } from './bootstrap.js';
