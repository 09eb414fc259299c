// An in-process xDS control plane for e2e tests: the real xDS server and snapshot
// cache on a free loopback port, with waits on what proxies ACK and NACK.
import * as grpc from '@grpc/grpc-js';
import { createGrpcServer, createXdsServer, listen, shutdown, type ProxyInfo, type XdsServer } from '../../src/xds/index.js';
import { createSnapshotCache, type SnapshotCache } from '../../src/snapshot/index.js';
import { createLogger, createRecordingLogger, teeLogger, type Logger, type RecordedLine } from '../../src/observability/index.js';
import type { TypeUrl } from '../../src/proto/index.js';
import { eventually } from '../harness/index.js';

/** One ACK or NACK a proxy sent. */
export interface XdsEvent {
  readonly kind: 'ack' | 'nack';
  readonly nodeId: string;
  readonly typeUrl: TypeUrl;
  readonly version: string;
  readonly error?: string;
}

/** A running test control plane. */
export interface TestControlPlane {
  readonly host: string;
  readonly port: number;
  readonly cache: SnapshotCache;
  readonly xds: XdsServer;
  readonly events: readonly XdsEvent[];
  /** Every log line the control plane wrote. */
  readonly logLines: readonly RecordedLine[];
  connected(): readonly ProxyInfo[];
  /** Resolves when `nodeId` has ACKed `version` of `typeUrl` (counting only events after the first `since`). */
  waitForAck(nodeId: string, typeUrl: TypeUrl, version: string, since?: number, timeoutMs?: number): Promise<void>;
  /** Resolves with the first NACK from `nodeId` for `typeUrl` after `since` events. */
  waitForNack(nodeId: string, typeUrl: TypeUrl, since?: number, timeoutMs?: number): Promise<XdsEvent>;
  stop(): Promise<void>;
}

/** Starts a control plane on 127.0.0.1 with a free port. */
export async function startTestControlPlane(opts: { echoLogs?: boolean } = {}): Promise<TestControlPlane> {
  const recorder = createRecordingLogger();
  const real = opts.echoLogs || process.env.E2E_CP_LOGS ? createLogger({ level: 'debug' }) : undefined;
  const log: Logger = real ? teeLogger(recorder, real) : recorder;
  const events: XdsEvent[] = [];
  const cache = createSnapshotCache({ log });
  const xds = createXdsServer({
    snapshots: cache,
    log,
    hooks: {
      onAck: (p, typeUrl, version) => events.push({ kind: 'ack', nodeId: p.nodeId, typeUrl, version }),
      onNack: (p, typeUrl, version, error) => events.push({ kind: 'nack', nodeId: p.nodeId, typeUrl, version, error }),
    },
  });
  const server = createGrpcServer();
  xds.register(server);
  const host = '127.0.0.1';
  const port = await listen(server, host, 0, grpc.ServerCredentials.createInsecure());
  return {
    host,
    port,
    cache,
    xds,
    events,
    logLines: recorder.lines,
    connected: () => xds.connected(),
    async waitForAck(nodeId, typeUrl, version, since = 0, timeoutMs = 15_000) {
      await eventually(
        () => events.slice(since).some((e) => e.kind === 'ack' && e.nodeId === nodeId && e.typeUrl === typeUrl && e.version === version),
        {
          timeoutMs,
          description: `${nodeId} to ACK ${typeUrl} ${version}`,
        },
      );
    },
    async waitForNack(nodeId, typeUrl, since = 0, timeoutMs = 15_000) {
      return eventually(() => events.slice(since).find((e) => e.kind === 'nack' && e.nodeId === nodeId && e.typeUrl === typeUrl) ?? false, {
        timeoutMs,
        description: `${nodeId} to NACK ${typeUrl}`,
      });
    },
    async stop() {
      xds.closeAll();
      await shutdown(server, 1_000);
    },
  };
}
