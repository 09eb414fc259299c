// The messages between a bench (parent) and its fleet of simulated clients (a child
// process, see fleet-child.ts). They only steer the fleet; nothing is timed over IPC.

/** Opens `count` streams to `address`, `perChannel` streams on each gRPC channel (own connection). */
export interface OpenAds {
  readonly cmd: 'open-ads';
  readonly address: string;
  readonly count: number;
  readonly perChannel: number;
  /** Node ids are `${nodePrefix}${i}`. */
  readonly nodePrefix: string;
  readonly typeUrl: string;
}

/**
 * Opens `count` bare echo streams: each says hello, then answers every message with `replyBytes` bytes,
 * or, with `ackLikeAds`, decodes it as a DiscoveryResponse and answers its ACK exactly as the ADS clients do.
 */
export interface OpenEcho {
  readonly cmd: 'open-echo';
  readonly address: string;
  readonly path: string;
  readonly count: number;
  readonly perChannel: number;
  readonly replyBytes: number;
  readonly ackLikeAds?: boolean;
}

/** Ends every stream and closes every channel. */
export interface CloseAll {
  readonly cmd: 'close';
}

/** Asks for the fleet's counters. */
export interface GetStats {
  readonly cmd: 'stats';
}

/** What the parent sends. */
export type FleetCommand = OpenAds | OpenEcho | CloseAll | GetStats;

/** What the fleet counted since it started. */
export interface FleetStats {
  readonly streams: number;
  readonly messages: number;
  readonly bytes: number;
  readonly errors: number;
  /** The resources in the last response an ADS stream got (every ADS stream should agree). */
  readonly lastResourceCount: number;
  /** The fleet process's CPU time so far (user + system), in milliseconds. */
  readonly cpuMs: number;
}
