import { Any } from '../../generated/google/protobuf/any.js';

/** A generated message codec: what ts-proto emits for every message type. */
export interface MessageCodec<T> {
  encode(message: T): { finish(): Uint8Array };
  fromPartial(object: DeepPartialLike<T>): T;
}

/** ts-proto's DeepPartial, loosely: every field optional, all the way down. */
export type DeepPartialLike<T> = T extends Uint8Array | string | number | boolean | undefined
  ? T
  : T extends readonly (infer U)[]
    ? readonly DeepPartialLike<U>[]
    : { [K in keyof T]?: DeepPartialLike<T[K]> };

/** Packs a message as a google.protobuf.Any for a typed_config field. */
export function packAny<T>(typeName: string, codec: MessageCodec<T>, message: DeepPartialLike<T>): Any {
  return { typeUrl: `type.googleapis.com/${typeName}`, value: Buffer.from(codec.encode(codec.fromPartial(message)).finish()) };
}
