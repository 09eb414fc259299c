// envoy.extensions.upstreams.http.v3.HttpProtocolOptions, written by hand: the generated set does
// not include the upstreams extensions, and a cluster's upstream idle timeout and requests per
// connection (DestinationRule connectionPool.http) need only two of its fields:
//   1: config.core.v3.HttpProtocolOptions common_http_protocol_options
//   3: ExplicitHttpConfig explicit_http_config { 1: Http1ProtocolOptions http_protocol_options }
// The upstream protocol is a required oneof; sidecars speak HTTP/1.1 upstream, so it is explicit.
import _m0 from 'protobufjs/minimal.js';
import { HttpProtocolOptions as CoreHttpProtocolOptions } from '../../generated/envoy/config/core/v3/protocol.js';
import type { MessageCodec } from './any.js';

/** The two settings of Envoy's upstream HttpProtocolOptions meshpilot sets. */
export interface UpstreamHttpOptions {
  idleTimeoutMs?: number;
  maxRequestsPerConnection?: number;
}

/** The type name, for packing into an Any and as the key of a cluster's typed_extension_protocol_options. */
export const UPSTREAM_HTTP_OPTIONS_TYPE = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** Encodes UpstreamHttpOptions as Envoy's HttpProtocolOptions. */
export const UpstreamHttpOptions: MessageCodec<UpstreamHttpOptions> = {
  encode(message) {
    const w = _m0.Writer.create();
    const ms = message.idleTimeoutMs;
    const common = CoreHttpProtocolOptions.fromPartial({
      ...(ms !== undefined ? { idleTimeout: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 } } : {}),
      ...(message.maxRequestsPerConnection !== undefined ? { maxRequestsPerConnection: message.maxRequestsPerConnection } : {}),
    });
    CoreHttpProtocolOptions.encode(common, w.uint32(10).fork()).ldelim();
    // explicit_http_config (3) holding an empty http_protocol_options (1).
    w.uint32(26).fork().uint32(10).fork().ldelim().ldelim();
    return w;
  },
  fromPartial(object) {
    return {
      ...(object.idleTimeoutMs !== undefined ? { idleTimeoutMs: object.idleTimeoutMs } : {}),
      ...(object.maxRequestsPerConnection !== undefined ? { maxRequestsPerConnection: object.maxRequestsPerConnection } : {}),
    };
  },
};
