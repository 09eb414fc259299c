// Decoding Istio's IstioCertificateRequest at the edge. Two things the generated codec
// cannot say: whether the bytes decoded at all (grpc-js would answer a throwing
// deserializer with a bare INTERNAL and no log line), and whether validity_duration was
// on the wire. It is a proto3 int64 without presence (istio/v1/auth/ca.proto), so a
// conforming encoder omits 0; an explicit 0 only comes from a hand-rolled encoder and is
// refused, while an absent field means "the server's default", as in Istio.
import type { ServiceDefinition } from '@grpc/grpc-js';
import { IstioCertificateRequest, IstioCertificateResponse, IstioCertificateServiceService } from '../proto/index.js';

/** A decoded certificate request; `validitySeconds` is undefined when the field was not on the wire. */
export interface CsrRequest {
  readonly csr: string;
  readonly validitySeconds: number | undefined;
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** Bytes that did not decode as an IstioCertificateRequest. */
export interface GarbledCsrRequest {
  readonly garbled: true;
  readonly error: string;
  readonly size: number;
}

/** What the handler receives: a decoded request or a garbled marker. */
export type IncomingCsrRequest = CsrRequest | GarbledCsrRequest;

const VALIDITY_FIELD = 3;

/** Decodes request bytes, never throwing. */
export function decodeCsrRequest(bytes: Buffer): IncomingCsrRequest {
  try {
    // protobufjs reads a length-delimited field past the end of the buffer without complaint;
    // the walk checks that every field ends inside the message, and which ones are there.
    const fields = topLevelFields(bytes);
    const m = IstioCertificateRequest.decode(bytes);
    const present = fields.has(VALIDITY_FIELD);
    return { csr: m.csr, validitySeconds: present ? m.validityDuration : undefined, metadata: m.metadata ?? {} };
  } catch (e) {
    return { garbled: true, error: (e as Error).message, size: bytes.length };
  }
}

/** Tells a garbled marker from a decoded request. */
export const isGarbledCsr = (m: IncomingCsrRequest): m is GarbledCsrRequest => (m as GarbledCsrRequest).garbled === true;

// Walks the top-level fields (protobuf encoding guide, "Message Structure"): a tag varint,
// then a payload whose size the wire type gives. Throws when a field runs past the end.
function topLevelFields(buf: Uint8Array): Set<number> {
  const seen = new Set<number>();
  let i = 0;
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (let n = 0; n < 10; n++) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++]!;
      value += (b & 0x7f) * scale;
      scale *= 128;
      if ((b & 0x80) === 0) return value;
    }
    throw new Error('varint longer than 10 bytes');
  };
  while (i < buf.length) {
    const tag = varint();
    seen.add(Math.floor(tag / 8));
    switch (tag % 8) {
      case 0:
        varint();
        break;
      case 1:
        i += 8;
        break;
      case 2: {
        const length = varint(); // read before `i` is: `i += varint()` would add to the old `i`
        i += length;
        break;
      }
      case 5:
        i += 4;
        break;
      default:
        throw new Error(`wire type ${tag % 8} is not used by this message`);
    }
    if (i > buf.length) throw new Error(`field ${Math.floor(tag / 8)} runs past the end of the message`);
  }
  return seen;
}

/** The service definition grpc-js serves: Istio's method path and codecs, with the tolerant request decoder. */
export const csrServiceDefinition: ServiceDefinition = {
  createCertificate: {
    ...IstioCertificateServiceService.createCertificate,
    requestDeserialize: decodeCsrRequest,
    responseSerialize: (v: IstioCertificateResponse) => Buffer.from(IstioCertificateResponse.encode(v).finish()),
  },
};
