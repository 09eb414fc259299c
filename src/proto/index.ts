export { TypeUrl, isKnownTypeUrl, typeShortName, pushOrder } from './type-url.js';
export { packAny } from './any.js';
export type { MessageCodec, DeepPartialLike } from './any.js';
export { encodeAny, sotwResourceChunk, deltaResourceChunk, sotwResponse, deltaResponse } from './wire.js';
export { xdsServices, isGarbled } from './xds-services.js';
export type { XdsServiceSpec, GarbledRequest, Incoming } from './xds-services.js';
export * from './messages.js';
export { UriTemplateMatchConfig, URI_TEMPLATE_MATCH_TYPE } from './uri-template.js';
export { StdoutAccessLog, STDOUT_ACCESS_LOG_TYPE } from './stdout-access-log.js';
