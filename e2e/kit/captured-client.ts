// One captured client and one server outside the mesh, each in a network namespace of its own, for
// tests of outbound traffic policy in capture mode: a mesh whose client workload (apps/client)
// runs behind a real sidecar in capture mode, and a ServiceEntry `api.partner.test` (HTTP, port 80)
// for the outside server. The test adds its own config around that. Everything made is removed by
// stop(), also after a set-up that failed halfway.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCapturedSidecar, meshpilotCli, type CapturedSidecar } from './captured-sidecar.js';
import { startMesh, type TestMesh } from './mesh.js';
import { SERVER_APP } from './plain-apps.js';
import { createTestNet, ensureProxyUser, netMode, TMP_PREFIX, type NsProcess, type TestHost, type TestNet } from './netns.js';

/** The outside server's HTTP port (the ServiceEntry's targetPort). */
export const OUTSIDE_HTTP_PORT = 8080;

/** What a test chooses. */
export interface CapturedClientOptions {
  /** Short name for the namespaces and temp directory. */
  readonly tag: string;
  readonly outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** More config for mesh.yaml, given the outside host (its address). */
  readonly moreConfig?: (outside: TestHost) => string;
  /** More files in the config directory. */
  readonly files?: Readonly<Record<string, string>>;
  /** Ports the outside server listens on besides OUTSIDE_HTTP_PORT. */
  readonly morePorts?: readonly number[];
}

/** The scenario once started. */
export interface CapturedClient {
  /** The test net's /24 prefix (`a.b.c`); the serviceCidr is its .192/26. */
  readonly subnet: string;
  readonly mesh: TestMesh;
  readonly client: TestHost;
  readonly outside: TestHost;
  readonly sidecar: CapturedSidecar;
}

/** A scenario to start in before() and stop in after(). */
export interface CapturedClientScenario {
  start(o: CapturedClientOptions): Promise<CapturedClient>;
  /** Logs of the sidecar, the server and the control plane, when the test failed. */
  dumpIfFailed(test: Mocha.Test | undefined): void;
  stop(): Promise<void>;
}

/** Creates the scenario; nothing is made until start(). */
export function capturedClientScenario(): CapturedClientScenario {
  let net: TestNet | undefined;
  let mesh: TestMesh | undefined;
  let dir: string | undefined;
  let sidecar: CapturedSidecar | undefined;
  const apps: NsProcess[] = [];
  return {
    async start(o) {
      const mode = netMode();
      // Capture mode needs root and network namespaces (CI has both): without them this fails, never skips.
      if (mode.kind === 'loopback') throw new Error(`capture mode unavailable: ${mode.reason}`);
      ensureProxyUser();
      net = createTestNet();
      dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${process.pid}-${o.tag}-`));
      const client = net.addHost(`${o.tag}-client`);
      const outside = net.addHost(`${o.tag}-outside`);
      const cpAddress = net.addRootLink();
      const config = `apiVersion: meshpilot.io/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec:
  captureMode: iptables
  serviceCidr: ${net.subnet}.192/26
  outboundTrafficPolicy: { mode: ${o.outboundTrafficPolicy} }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: client, namespace: apps }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client, namespace: apps }
spec:
  address: ${client.ip}
  serviceAccount: client
  labels: { app: client, security.istio.io/tlsMode: istio }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: partner-api, namespace: apps }
spec:
  hosts: [api.partner.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP, targetPort: ${OUTSIDE_HTTP_PORT} }]
  endpoints: [{ address: ${outside.ip} }]
${o.moreConfig ? `---\n${o.moreConfig(outside)}` : ''}`;
      const stateDir = path.join(dir, 'state');
      meshpilotCli(['ca', 'init', '--state-dir', stateDir]);
      mesh = await startMesh({ 'mesh.yaml': config, ...o.files }, { stateDir, xdsHost: cpAddress });
      client.writeHosts(meshpilotCli(['hosts', '--config', mesh.configDir, '--namespace', 'apps']));
      const ports = [OUTSIDE_HTTP_PORT, ...(o.morePorts ?? [])].map(String);
      const server = outside.spawn(`${o.tag}-outside`, [process.execPath, '-e', SERVER_APP, 'outside', ...ports]);
      apps.push(server);
      await server.waitForLine((l) => l === 'listening');
      meshpilotCli(['capture', '--netns', client.ns]);
      sidecar = await startCapturedSidecar(client, {
        stateDir,
        namespace: 'apps',
        workload: 'client',
        serviceAccount: 'client',
        xdsAddress: `${cpAddress}:${mesh.mp.xdsPort}`,
      });
      return { subnet: net.subnet, mesh, client, outside, sidecar };
    },
    dumpIfFailed(test) {
      if (test?.state !== 'failed') return;
      if (sidecar) process.stderr.write(`\n----- ${sidecar.proc.name} -----\n${sidecar.proc.logs(60)}\n`);
      for (const a of apps) process.stderr.write(`\n----- ${a.name} -----\n${a.logs(10)}\n`);
      mesh?.dumpIfFailed(test);
    },
    async stop() {
      await sidecar?.stop();
      await net?.destroy();
      await mesh?.stop();
      if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
