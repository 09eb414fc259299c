// A mesh run the way users run it: `meshpilot serve` as a process on a state directory,
// each sidecar bootstrapped by `meshpilot bootstrap`, test apps on the workloads' addresses.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { envoyPool, startHttpUpstream, type EnvoyPool, type EnvoyProcess, type HttpUpstream } from '../harness/index.js';
import type { TestWorkload } from './mesh.js';
import { APP_PORT } from './photo-app.js';
import { controlPlaneProcess, runMeshpilot, runMeshpilotAsync, type ControlPlaneProcess } from './processes.js';
import { readIssued, type ClientCert } from './tls-client.js';

/** A running process mesh. */
export interface ProcessMesh {
  readonly dir: string;
  readonly stateDir: string;
  readonly cp: ControlPlaneProcess;
  readonly envoys: EnvoyPool;
  readonly sidecars: ReadonlyMap<string, EnvoyProcess>;
  /** The bootstrap `meshpilot bootstrap` writes for a workload (extra flags appended). */
  bootstrap(w: TestWorkload, extra?: readonly string[]): Record<string, unknown>;
  /** `meshpilot ca issue` through the running control plane; the key stays with the test. */
  issue(namespace: string, serviceAccount: string, ttl?: string): Promise<{ serial: string; cert: ClientCert }>;
  /** Prints the control plane's and the Envoys' recent logs when the test failed. */
  dumpIfFailed(test: Mocha.Test | undefined): void;
  stop(): Promise<void>;
}

/** Starts the control plane over `files` and, for each workload, its app and a sidecar. */
export async function startProcessMesh(
  name: string,
  files: Record<string, string>,
  workloads: readonly TestWorkload[],
  o: { serveArgs?: readonly string[]; launcher?: readonly string[] } = {},
): Promise<ProcessMesh> {
  const dir = mkdtempSync(join(tmpdir(), `meshpilot-e2e-${name}-`));
  const stateDir = join(dir, 'state');
  const configDir = join(dir, 'config');
  mkdirSync(configDir);
  for (const [f, text] of Object.entries(files)) writeFileSync(join(configDir, f), text);
  const envoys = envoyPool();
  const apps: HttpUpstream[] = [];
  const sidecars = new Map<string, EnvoyProcess>();
  const cp = await controlPlaneProcess({ configDir, stateDir, extraArgs: o.serveArgs, launcher: o.launcher });
  let issued = 0;
  const mesh: ProcessMesh = {
    dir,
    stateDir,
    cp,
    envoys,
    sidecars,
    bootstrap(w, extra = []) {
      const sa = w.serviceAccount ?? w.name;
      const args = ['bootstrap', '--state-dir', stateDir, '--namespace', w.namespace, '--workload', w.name, '--service-account', sa];
      args.push('--address', w.address, '--xds-address', `127.0.0.1:${cp.xdsPort}`, ...extra);
      return JSON.parse(runMeshpilot(args)) as Record<string, unknown>;
    },
    async issue(namespace, serviceAccount, ttl = '1h') {
      const out = join(dir, `issued-${++issued}`);
      const said = await runMeshpilotAsync([
        'ca',
        'issue',
        '--state-dir',
        stateDir,
        '--namespace',
        namespace,
        '--service-account',
        serviceAccount,
        '--out',
        out,
        '--ttl',
        ttl,
      ]);
      return { serial: /serial: ([0-9a-f]+)/.exec(said)![1]!, cert: readIssued(out) };
    },
    dumpIfFailed(test) {
      envoys.dumpLogsIfFailed(test);
      if (test?.state === 'failed') console.error(`--- meshpilot ---\n${cp.current()?.logs(60)}`);
    },
    async stop() {
      await envoys.stopAll();
      await cp.current()?.stop();
      await Promise.all(apps.map((a) => a.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await cp.start();
    for (const w of workloads) {
      apps.push(await startHttpUpstream({ host: w.address, port: APP_PORT, name: w.name }));
      sidecars.set(w.name, await envoys.start({ name: `${w.name}-sidecar`, bootstrap: mesh.bootstrap(w) }));
    }
  } catch (e) {
    await mesh.stop();
    throw e;
  }
  return mesh;
}
