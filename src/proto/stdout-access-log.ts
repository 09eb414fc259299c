// envoy.extensions.access_loggers.stream.v3.StdoutAccessLog, written by hand: the generated set
// does not include the access loggers, and its one field is 1: log_format (a generated
// SubstitutionFormatString). The stdout logger writes through Envoy's own stdout, so unlike the
// file logger on /dev/stdout it works when stdout is a socket (open(2) on one fails with ENXIO).
import _m0 from 'protobufjs/minimal.js';
import { SubstitutionFormatString } from '../../generated/envoy/config/core/v3/substitution_format_string.js';
import type { DeepPartialLike, MessageCodec } from './any.js';

/** The config of Envoy's stdout access logger. */
export interface StdoutAccessLog {
  logFormat: SubstitutionFormatString | undefined;
}

/** The type name of StdoutAccessLog, for packing into an Any. */
export const STDOUT_ACCESS_LOG_TYPE = 'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';

/** Encodes StdoutAccessLog as protobuf. */
export const StdoutAccessLog: MessageCodec<StdoutAccessLog> = {
  encode(message) {
    const w = _m0.Writer.create();
    if (message.logFormat !== undefined) SubstitutionFormatString.encode(message.logFormat, w.uint32(10).fork()).ldelim();
    return w;
  },
  fromPartial(object: DeepPartialLike<StdoutAccessLog>) {
    return {
      logFormat:
        object.logFormat !== undefined
          ? SubstitutionFormatString.fromPartial(object.logFormat as Parameters<typeof SubstitutionFormatString.fromPartial>[0])
          : undefined,
    };
  },
};
