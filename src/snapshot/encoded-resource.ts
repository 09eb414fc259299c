import { shortHash } from '../lib/index.js';
import { deltaResourceChunk, encodeAny, sotwResourceChunk, type TypeUrl } from '../proto/index.js';

/** A reference from one resource to another that must be in the same snapshot. */
export interface ResourceRef {
  readonly typeUrl: TypeUrl;
  readonly name: string;
}

let encodings = 0;

/** How many resources have been encoded since start: a bench shows this equals distinct versions. */
export function encodingCount(): number {
  return encodings;
}

/**
 * One xDS resource, encoded to bytes at most once, lazily. Its version is a hash of
 * those bytes, so identical content always has the same version and is never pushed
 * twice; every stream that sends it shares the same buffers (see proto/wire.ts).
 */
export class EncodedResource {
  #any?: Buffer;
  #version?: string;
  #sotw?: Buffer;
  #delta?: Buffer;

  constructor(
    readonly typeUrl: TypeUrl,
    readonly name: string,
    private readonly encodeMessage: () => Uint8Array,
    readonly refs: readonly ResourceRef[] = [],
  ) {}

  /** The resource as an encoded google.protobuf.Any. */
  anyBytes(): Buffer {
    if (!this.#any) {
      encodings++;
      this.#any = encodeAny(this.typeUrl, this.encodeMessage());
    }
    return this.#any;
  }

  /** Content version: a hash of the encoded bytes. */
  version(): string {
    return (this.#version ??= shortHash(this.anyBytes()));
  }

  /** Pre-framed `resources` entry for a state-of-the-world DiscoveryResponse. */
  sotwChunk(): Buffer {
    return (this.#sotw ??= sotwResourceChunk(this.anyBytes()));
  }

  /** Pre-framed `resources` entry for a DeltaDiscoveryResponse. */
  deltaChunk(): Buffer {
    return (this.#delta ??= deltaResourceChunk(this.name, this.version(), this.anyBytes()));
  }
}

/** A generated message codec, as ts-proto emits it. */
export interface Encoder<T> {
  encode(message: T): { finish(): Uint8Array };
}

/** Wraps a message as a lazily encoded resource. */
export function encodedResource<T>(
  typeUrl: TypeUrl,
  name: string,
  codec: Encoder<T>,
  message: T,
  refs: readonly ResourceRef[] = [],
): EncodedResource {
  return new EncodedResource(typeUrl, name, () => codec.encode(message).finish(), refs);
}
