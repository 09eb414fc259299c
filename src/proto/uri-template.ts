// envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig, written by hand: its one
// field (1: string path_template) is all RBAC's uri_template permission needs, and the generated
// set does not include the path extensions.
import _m0 from 'protobufjs/minimal.js';
import type { MessageCodec } from './any.js';

/** The config of Envoy's URI template path matcher (`/foo/*` one segment, `/foo/**` any number). */
export interface UriTemplateMatchConfig {
  pathTemplate: string;
}

/** The type name of UriTemplateMatchConfig, for packing into an Any. */
export const URI_TEMPLATE_MATCH_TYPE = 'envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig';

/** Encodes and decodes UriTemplateMatchConfig as protobuf. */
export const UriTemplateMatchConfig: MessageCodec<UriTemplateMatchConfig> & { decode(bytes: Uint8Array): UriTemplateMatchConfig } = {
  encode(message) {
    const w = _m0.Writer.create();
    if (message.pathTemplate !== '') w.uint32(10).string(message.pathTemplate);
    return w;
  },
  fromPartial(object) {
    return { pathTemplate: object.pathTemplate ?? '' };
  },
  decode(bytes) {
    const r = _m0.Reader.create(bytes);
    const out: UriTemplateMatchConfig = { pathTemplate: '' };
    while (r.pos < r.len) {
      const tag = r.uint32();
      if (tag === 10) out.pathTemplate = r.string();
      else r.skipType(tag & 7);
    }
    return out;
  },
};
