// A whole mesh for e2e tests: meshpilot started in-process with the same wiring as
// `meshpilot serve`, test apps on per-workload loopback addresses, and one real Envoy
// sidecar per workload.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMeshpilot, type RunningMeshpilot } from '../../src/main.js';
import { sidecarNodeId, OUTBOUND_HTTP_PORT } from '../../src/generate/index.js';
import { createLogger, createRecordingLogger, teeLogger, type RecordedLine } from '../../src/observability/index.js';
import type { TypeUrl } from '../../src/proto/index.js';
import {
  adsBootstrap,
  envoyPool,
  eventually,
  httpRequest,
  type EnvoyPool,
  type EnvoyProcess,
  type HttpResponse,
} from '../harness/index.js';
import type { XdsEvent } from './control-plane.js';

/** A workload as a test names it. */
export interface TestWorkload {
  readonly name: string;
  readonly namespace: string;
  readonly address: string;
}

/** A running test mesh. */
export interface TestMesh {
  readonly mp: RunningMeshpilot;
  readonly configDir: string;
  readonly envoys: EnvoyPool;
  readonly events: readonly XdsEvent[];
  readonly logLines: readonly RecordedLine[];
  /** Replaces one config file atomically (the watcher sees one change). */
  writeConfig(fileName: string, text: string): void;
  /** Starts a sidecar for a workload and waits until Envoy is LIVE (its listeners, clusters and secrets arrived). */
  startSidecar(w: TestWorkload, opts?: { apiType?: 'GRPC' | 'DELTA_GRPC' }): Promise<EnvoyProcess>;
  /** Sends an HTTP request from a workload through its sidecar to a service (`host` is the service's host[:port]). */
  call(from: TestWorkload, host: string, path?: string): Promise<HttpResponse>;
  waitForAck(nodeId: string, typeUrl: TypeUrl, since?: number): Promise<void>;
  stop(): Promise<void>;
}

/** The node id a sidecar of this workload uses. */
export const nodeIdOf = (w: TestWorkload): string => sidecarNodeId(w.address, w.name, w.namespace, 'cluster.local');

/** Starts meshpilot over a temporary config directory holding `files`. */
export async function startMesh(files: Record<string, string>): Promise<TestMesh> {
  const configDir = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-config-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(configDir, name), text);
  const recorder = createRecordingLogger();
  const log = process.env.E2E_CP_LOGS ? teeLogger(recorder, createLogger({ level: 'debug' })) : recorder;
  const events: XdsEvent[] = [];
  const envoys = envoyPool();
  let mp: RunningMeshpilot;
  try {
    mp = await startMeshpilot({
      configPaths: [configDir],
      ephemeral: true,
      xdsHost: '127.0.0.1',
      xdsPort: 0,
      log,
      hooks: {
        onAck: (p, typeUrl, version) => events.push({ kind: 'ack', nodeId: p.nodeId, typeUrl, version }),
        onNack: (p, typeUrl, version, error) => events.push({ kind: 'nack', nodeId: p.nodeId, typeUrl, version, error }),
      },
    });
  } catch (e) {
    rmSync(configDir, { recursive: true, force: true });
    throw e;
  }
  return {
    mp,
    configDir,
    envoys,
    events,
    logLines: recorder.lines,
    writeConfig(fileName, text) {
      const tmp = join(configDir, `.${fileName}.tmp`);
      writeFileSync(tmp, text);
      renameSync(tmp, join(configDir, fileName));
    },
    async startSidecar(w, opts = {}) {
      const bootstrap = adsBootstrap({
        nodeId: nodeIdOf(w),
        cluster: w.name,
        xdsHost: '127.0.0.1',
        xdsPort: mp.xdsPort,
        apiType: opts.apiType,
      });
      return envoys.start({ name: `${w.name}-sidecar`, bootstrap });
    },
    call(from, host, path = '/') {
      return httpRequest({ host: from.address, port: OUTBOUND_HTTP_PORT, path, headers: { host } });
    },
    async waitForAck(nodeId, typeUrl, since = 0) {
      await eventually(() => events.slice(since).some((e) => e.kind === 'ack' && e.nodeId === nodeId && e.typeUrl === typeUrl), {
        timeoutMs: 15_000,
        description: `${nodeId} to ACK ${typeUrl}`,
      });
    },
    async stop() {
      await envoys.stopAll();
      await mp.stop();
      rmSync(configDir, { recursive: true, force: true });
    },
  };
}
