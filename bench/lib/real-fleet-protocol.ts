// The messages between the real-path benchmark and its fleet of Envoy-like proxies (a
// child process, real-fleet-child.ts). They only steer; every time is taken in the
// process where the event happens, as epoch milliseconds (performance.timeOrigin +
// performance.now()), so times from the server and the fleet compare.

/** Where and how to connect: TLS to `address`, checking the server's certificate against `rootPem` for `serverName`. */
export interface Target {
  readonly address: string;
  readonly serverName: string;
  readonly rootPem: string;
}

/** One proxy to start: its node id and the token it sends as `authorization: Bearer`. */
export interface ProxySpec {
  readonly nodeId: string;
  readonly token?: string;
}

/** Opens one TLS connection and one ADS stream per proxy (SotW or delta) and subscribes as Envoy does. */
export interface OpenAds extends Target {
  readonly cmd: 'open-ads';
  readonly protocol: 'sotw' | 'delta';
  readonly proxies: readonly ProxySpec[];
}

/** Waits until every proxy has ACKed all five types at least once. */
export interface AwaitReady {
  readonly cmd: 'await-ready';
  readonly timeoutMs: number;
}

/**
 * Starts watching for a change: a proxy is done once it has ACKed, for each of `types`
 * (short names: cds, eds, lds, rds, sds), a response whose bytes contain `marker`.
 * Also zeroes the byte and message counters.
 */
export interface Expect {
  readonly cmd: 'expect';
  readonly marker: string;
  readonly types: readonly string[];
}

/** Waits until every proxy is done with the current expectation. */
export interface AwaitMarker {
  readonly cmd: 'await-marker';
  readonly timeoutMs: number;
}

/** Proxy 0's current resources per type URL (base64 of each resource), SotW only. */
export interface Dump {
  readonly cmd: 'dump';
}

/** Opens `count` bare TLS streams on the floor server; each says hello, then answers every message with `replyBytes`. */
export interface OpenEcho extends Target {
  readonly cmd: 'open-echo';
  readonly path: string;
  readonly count: number;
  readonly replyBytes: number;
  /** The first awaited total: the messages each stream gets on hello. */
  readonly total: number;
}

/** From now on, a stream has arrived when it has received `total` messages since it opened (send before the server writes). */
export interface EchoTotal {
  readonly cmd: 'echo-total';
  readonly total: number;
}

/** Waits until every echo stream has received the awaited total. */
export interface AwaitEcho {
  readonly cmd: 'await-echo';
  readonly timeoutMs: number;
}

/** Ends every stream and closes every channel, and forgets every proxy. */
export interface CloseAll {
  readonly cmd: 'close';
}

/** Asks for the counters. */
export interface GetStats {
  readonly cmd: 'stats';
}

/** What the bench sends the fleet. */
export type RealFleetCommand = OpenAds | AwaitReady | Expect | AwaitMarker | Dump | OpenEcho | EchoTotal | AwaitEcho | CloseAll | GetStats;

/** When each proxy (or echo stream) got there, epoch ms; null for those that had not when the wait timed out. */
export interface Arrivals {
  /** When the fleet started opening the streams (open-ads / open-echo), epoch ms. */
  readonly openedAtMs: number;
  readonly atMs: readonly (number | null)[];
  readonly timedOut: boolean;
}

/** The fleet's answer. */
export interface RealFleetReply {
  readonly streams: number;
  /** Responses and their bytes (gRPC message bytes) received since the last open or expect. */
  readonly messages: number;
  readonly bytes: number;
  readonly errors: number;
  /** The first few stream errors, for the report. */
  readonly errorSamples: readonly string[];
  readonly cpuMs: number;
  readonly arrivals?: Arrivals;
  /** Proxy 0's response sizes, in order, from open to ready (cold) and from the last expect to done (change). */
  readonly proxy0Sizes?: { readonly cold: readonly number[]; readonly change: readonly number[] };
  readonly dump?: Readonly<Record<string, readonly string[]>>;
}
