// Hand-written protobuf framing for the xDS hot path. A DiscoveryResponse differs
// between two proxies that receive the same resources only in its nonce (and
// version), so each resource's `Any` is encoded once per version and the response
// bytes are spliced together from those cached chunks. protobufjs would re-encode
// every resource for every stream; that is the cost this file exists to avoid.
//
// Field numbers (envoy/service/discovery/v3/discovery.proto):
//   DiscoveryResponse:      version_info=1 resources=2 type_url=4 nonce=5 control_plane=6
//   DeltaDiscoveryResponse: system_version_info=1 resources=2 type_url=4 removed_resources=6 nonce=5
//   Resource:               version=1 resource=2 name=3
//   google.protobuf.Any:    type_url=1 value=2

const WIRE_LEN = 2;

/** Encodes a varint (values below 2^53). */
export function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}

/** Frames bytes as a length-delimited field: tag, length, payload. */
export function lengthDelimited(field: number, payload: Uint8Array): Buffer {
  const tag = varint((field << 3) | WIRE_LEN);
  const len = varint(payload.length);
  const out = Buffer.allocUnsafe(tag.length + len.length + payload.length);
  out.set(tag, 0);
  out.set(len, tag.length);
  out.set(payload, tag.length + len.length);
  return out;
}

/** Frames a string field; empty strings are omitted, as proto3 does. */
export function stringField(field: number, s: string): Buffer {
  return s === '' ? Buffer.alloc(0) : lengthDelimited(field, Buffer.from(s, 'utf8'));
}

/** Encodes a google.protobuf.Any from a type URL and the message's bytes. */
export function encodeAny(typeUrl: string, value: Uint8Array): Buffer {
  return Buffer.concat([stringField(1, typeUrl), lengthDelimited(2, value)]);
}

/** The `resources` entry of a DiscoveryResponse for one resource: field 2 around its Any. */
export function sotwResourceChunk(anyBytes: Uint8Array): Buffer {
  return lengthDelimited(2, anyBytes);
}

/** The `resources` entry of a DeltaDiscoveryResponse: field 2 around a Resource{version, resource, name}. */
export function deltaResourceChunk(name: string, version: string, anyBytes: Uint8Array): Buffer {
  const resource = Buffer.concat([stringField(1, version), lengthDelimited(2, anyBytes), stringField(3, name)]);
  return lengthDelimited(2, resource);
}

/** Splices a DiscoveryResponse from cached resource chunks. */
export function sotwResponse(p: { versionInfo: string; typeUrl: string; nonce: string; chunks: readonly Uint8Array[] }): Buffer {
  return Buffer.concat([stringField(1, p.versionInfo), ...p.chunks, stringField(4, p.typeUrl), stringField(5, p.nonce)]);
}

/** Splices a DeltaDiscoveryResponse from cached resource chunks and removed names. */
export function deltaResponse(p: {
  systemVersionInfo: string;
  typeUrl: string;
  nonce: string;
  chunks: readonly Uint8Array[];
  removed: readonly string[];
}): Buffer {
  return Buffer.concat([
    stringField(1, p.systemVersionInfo),
    ...p.chunks,
    stringField(4, p.typeUrl),
    stringField(5, p.nonce),
    ...p.removed.map((name) => lengthDelimited(6, Buffer.from(name, 'utf8'))),
  ]);
}
