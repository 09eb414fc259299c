// A whole mesh for e2e tests: meshpilot started in-process with the same wiring as
// `meshpilot serve`, test apps on per-workload loopback addresses, and one real Envoy
// sidecar per workload.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMeshpilot, type MeshpilotOptions, type RunningMeshpilot } from '../../src/main.js';
import type { Pkcs11KeyRef } from '../../src/ca/index.js';
import { sidecarBootstrap } from '../../src/bootstrap/index.js';
import { sidecarNodeId, OUTBOUND_HTTP_PORT } from '../../src/generate/index.js';
import { createLogger, createRecordingLogger, teeLogger, type RecordedLine } from '../../src/observability/index.js';
import type { TypeUrl } from '../../src/proto/index.js';
import {
  envoyPool,
  eventually,
  httpRequest,
  startHttpUpstream,
  type EnvoyPool,
  type EnvoyProcess,
  type HttpResponse,
  type HttpUpstream,
} from '../harness/index.js';
import { APP_PORT } from './photo-app.js';
import type { XdsEvent } from './control-plane.js';

/** A workload as a test names it. */
export interface TestWorkload {
  readonly name: string;
  readonly namespace: string;
  readonly address: string;
  /** Defaults to the workload's name. */
  readonly serviceAccount?: string;
}

/** How a test sidecar connects: by default over TLS with a token for its own service account. */
export interface SidecarOptions {
  readonly apiType?: 'GRPC' | 'DELTA_GRPC';
  /** Present this token instead of one for the workload's own service account. */
  readonly token?: string;
  /** Claim this node id instead of the workload's own. */
  readonly nodeId?: string;
  /** Wait until Envoy is LIVE (default true); false for a sidecar the control plane is expected to refuse. */
  readonly waitReady?: boolean;
  /** A node agent's SDS socket (VM workloads). */
  readonly agentSocket?: string;
  /** A certificate directory kept by the control plane's secretDir: the SVID comes from its files. */
  readonly certDir?: string;
  readonly name?: string;
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
  startSidecar(w: TestWorkload, opts?: SidecarOptions): Promise<EnvoyProcess>;
  /** The bootstrap a sidecar of this workload gets (what `meshpilot bootstrap` writes). */
  bootstrapFor(w: TestWorkload, opts?: SidecarOptions): Promise<Record<string, unknown>>;
  /** Sends an HTTP request from a workload through its sidecar to a service (`host` is the service's host[:port]). */
  call(from: TestWorkload, host: string, path?: string): Promise<HttpResponse>;
  waitForAck(nodeId: string, typeUrl: TypeUrl, since?: number): Promise<void>;
  /** When the test failed: the last lines of every Envoy's log and of the control plane's. */
  dumpIfFailed(test: Mocha.Test | undefined): void;
  /** Stops the sidecars, the control plane and the test apps, and removes the config directory. */
  stop(): Promise<void>;
}

/** The node id a sidecar of this workload uses. */
export const nodeIdOf = (w: TestWorkload): string => sidecarNodeId(w.address, w.name, w.namespace, 'cluster.local');

/** Starts meshpilot over a temporary config directory holding `files`. */
export async function startMesh(
  files: Record<string, string>,
  opts: {
    insecurePlaintext?: boolean;
    stateDir?: string;
    /** A test app (an echoing upstream) on each of these workloads' address and app port. */
    apps?: readonly TestWorkload[];
    /** Where xDS listens (default 127.0.0.1); capture tests use an address their namespaces reach. */
    xdsHost?: string;
    /** The control plane keeps each workload service account's certificate files here. */
    secretDir?: string;
    /** Run the admin server on this loopback port (0 picks one); absent: none. */
    adminPort?: number;
    /** The CA key is in this PKCS#11 token (with stateDir: the self-signed root's key). */
    caPkcs11?: Pkcs11KeyRef;
    /** What jwksUri / OpenID discovery fetches may reach, the roots they trust, and how their hosts resolve. */
    jwks?: Pick<MeshpilotOptions, 'jwksFetchPolicy' | 'jwksCa' | 'jwksLookup'>;
  } = {},
): Promise<TestMesh> {
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
      ephemeral: opts.stateDir === undefined,
      stateDir: opts.stateDir,
      init: true,
      insecurePlaintext: opts.insecurePlaintext,
      secretDir: opts.secretDir,
      xdsHost: opts.xdsHost ?? '127.0.0.1',
      xdsPort: 0,
      adminPort: opts.adminPort,
      ...(opts.caPkcs11 ? { caPkcs11: opts.caPkcs11 } : {}),
      ...opts.jwks,
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
  async function bootstrapFor(w: TestWorkload, o: SidecarOptions = {}): Promise<Record<string, unknown>> {
    return sidecarBootstrap({
      nodeId: o.nodeId ?? nodeIdOf(w),
      cluster: w.name,
      xdsHost: '127.0.0.1',
      xdsPort: mp.xdsPort,
      apiType: o.apiType,
      agentSocket: o.agentSocket,
      certDir: o.certDir,
      ...(mp.secure
        ? {
            tls: { rootCaPem: mp.ca.trustBundle().pem, controlPlaneId: mp.controlPlaneId },
            token: o.agentSocket ? undefined : (o.token ?? (await mp.mintToken(w.namespace, w.serviceAccount ?? w.name))),
          }
        : {}),
    });
  }
  const apps: HttpUpstream[] = [];
  try {
    for (const w of opts.apps ?? []) apps.push(await startHttpUpstream({ host: w.address, port: APP_PORT, name: w.name }));
  } catch (e) {
    await Promise.all(apps.map((a) => a.close()));
    await mp.stop();
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
    bootstrapFor,
    async startSidecar(w, o = {}) {
      const bootstrap = await bootstrapFor(w, o);
      return envoys.start({ name: o.name ?? `${w.name}-sidecar`, bootstrap, waitReady: o.waitReady ?? true });
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
    dumpIfFailed(test) {
      envoys.dumpLogsIfFailed(test);
      if (test?.state !== 'failed') return;
      for (const l of recorder.lines.slice(-30)) console.error('meshpilot:', l.level, l.msg, JSON.stringify(l.fields));
    },
    async stop() {
      await envoys.stopAll();
      await mp.stop();
      await Promise.all(apps.map((a) => a.close()));
      rmSync(configDir, { recursive: true, force: true });
    },
  };
}
