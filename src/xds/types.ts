import { isKnownTypeUrl, type TypeUrl } from '../proto/index.js';

/** A connected proxy as one xDS stream knows it: what its node claimed, and where it connects from. */
export interface ProxyInfo {
  readonly streamId: number;
  readonly nodeId: string;
  readonly cluster: string;
  readonly peer: string;
  readonly protocol: 'sotw' | 'delta';
  /** The service the stream came in on (ADS or a per-type service). */
  readonly service: string;
  readonly userAgent: string;
  /** The identity the proxy proved with its credential; absent in plaintext development mode. */
  readonly identity?: string;
}

/** Things an xDS stream reports, for tests, metrics and the debug endpoint. */
export interface XdsHooks {
  onConnect?(proxy: ProxyInfo): void;
  onDisconnect?(proxy: ProxyInfo, reason: string): void;
  onSend?(proxy: ProxyInfo, typeUrl: TypeUrl, version: string, resourceNames: readonly string[]): void;
  onAck?(proxy: ProxyInfo, typeUrl: TypeUrl, version: string): void;
  onNack?(proxy: ProxyInfo, typeUrl: TypeUrl, rejectedVersion: string, error: string, resourceNames: readonly string[]): void;
  /** A proxy subscribed to names its snapshot does not hold (for secrets: not its own). */
  onUnknownNames?(proxy: ProxyInfo, typeUrl: TypeUrl, names: readonly string[]): void;
  /** A stream was ended by the server with an error status (refused or cut off); `reason` is the gRPC code name. */
  onRefused?(reason: string): void;
}

/** Bounds on what one stream may ask for. */
export interface XdsLimits {
  /** Most resource names one request may name (subscribe + unsubscribe for delta). */
  readonly maxResourceNames: number;
  /** Longest node id accepted; Envoy sidecars' ids are well under it. */
  readonly maxNodeIdLength: number;
  /** A stream that sends no request this long after it opens is ended (Envoy sends its first at once). */
  readonly firstRequestTimeoutMs: number;
  /** Most streams open at once; a stream above it is refused with UNAVAILABLE so that Envoy tries another replica. */
  readonly maxStreams: number;
}

/** Defaults: Envoy sidecars name a few hundred resources; ten thousand is far past any real one. */
export const defaultLimits: XdsLimits = {
  maxResourceNames: 10_000,
  maxNodeIdLength: 512,
  firstRequestTimeoutMs: 30_000,
  maxStreams: Infinity,
};

/** Why a stream must end: a gRPC status code name and a short message for the caller. */
export class StreamError extends Error {
  constructor(
    readonly code: 'INVALID_ARGUMENT' | 'RESOURCE_EXHAUSTED' | 'PERMISSION_DENIED' | 'UNAUTHENTICATED',
    message: string,
  ) {
    super(message);
  }
}

/** Proves who opened a stream, from its gRPC metadata and TLS client certificate. */
export type StreamAuthenticator = (call: {
  readonly metadata: import('@grpc/grpc-js').Metadata;
  readonly peerCertificate?: import('node:tls').PeerCertificate;
}) => Promise<
  import('../lib/index.js').Result<
    { readonly identity: string; readonly via: string; readonly expiresAt?: number; readonly serial?: string },
    { readonly kind: string; readonly message: string }
  >
>;

/** What a protocol state machine (SotW or delta) needs from the stream that runs it. */
export interface StreamDeps {
  readonly proxy: () => ProxyInfo;
  readonly send: (bytes: Buffer) => void;
  readonly log: import('../observability/index.js').Logger;
  readonly hooks: XdsHooks;
  readonly limits: XdsLimits;
  /** Set on per-type services (LDS, CDS, ...): requests may leave type_url empty. */
  readonly pinnedType?: TypeUrl;
}

/**
 * The type a request is for, or undefined (logged) when this stream does not serve it.
 * Envoy may ask for types meshpilot does not serve; answering nothing keeps the other
 * types of an ADS stream working, as the protocol allows.
 */
export function servedType(deps: StreamDeps, requested: string): TypeUrl | undefined {
  const t = requested || deps.pinnedType || '';
  if (isKnownTypeUrl(t) && (!deps.pinnedType || t === deps.pinnedType)) return t;
  deps.log.warn('unknown type url ignored', { node: deps.proxy().nodeId, typeUrl: t, reason: 'not served' });
  return undefined;
}

/**
 * Reports subscribed names the snapshot does not hold (for secrets: not the proxy's own),
 * once per distinct set; returns the key of what was reported, for the caller to keep.
 */
export function reportUnknownNames(
  deps: StreamDeps,
  typeUrl: TypeUrl,
  held: ReadonlyMap<string, unknown> | undefined,
  names: Iterable<string>,
  reported: string | undefined,
): string | undefined {
  if (!held) return reported;
  const unknown = [...names].filter((n) => !held.has(n));
  const key = unknown.join('\n');
  if (unknown.length > 0 && key !== reported) deps.hooks.onUnknownNames?.(deps.proxy(), typeUrl, unknown);
  return key;
}
