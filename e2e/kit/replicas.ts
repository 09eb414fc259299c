// Several `meshpilot serve` replicas on one etcd (the config store), as processes of the real CLI:
// each on its own loopback ports and state directory, restartable, killable.
import { join } from 'node:path';
import { eventually, freePort, type EnvoyProcess } from '../harness/index.js';
import { etcdFlags, type EtcdCluster } from '../../src/store/etcd-kit.js';

export { etcdFlags };
import { runMeshpilotAsync, startMeshpilotProcess, type Child } from './processes.js';

/** One replica: its ports and state, started and restarted on the same ones. */
export interface Replica {
  readonly name: string;
  readonly xdsPort: number;
  readonly adminPort: number;
  readonly stateDir: string;
  current(): Child;
  start(): Promise<Child>;
  /** Every log line of every run. */
  allLines(): readonly string[];
  /** One gauge or counter from its /metrics (first series). */
  metric(name: string): Promise<number | undefined>;
}

/**
 * Prepares `names.length` replicas, each with a state directory of its own (its admin endpoint and
 * config cache); `extraArgs` say where the CA lives (`--ca-store etcd ...` to share one).
 */
export async function prepareReplicas(o: {
  dir: string;
  names: readonly string[];
  cluster: EtcdCluster;
  extraArgs?: readonly string[];
}): Promise<Replica[]> {
  const out: Replica[] = [];
  for (const name of o.names) {
    const xdsPort = await freePort();
    const adminPort = await freePort();
    const stateDir = join(o.dir, `state-${name}`);
    let child: Child | undefined;
    const history: (readonly string[])[] = [];
    out.push({
      name,
      xdsPort,
      adminPort,
      stateDir,
      current: () => child!,
      async start() {
        child = startMeshpilotProcess(`meshpilot-${name}`, [
          'serve',
          '--config-store',
          'etcd',
          ...etcdFlags(o.cluster),
          '--state-dir',
          stateDir,
          '--xds-address',
          `127.0.0.1:${xdsPort}`,
          '--admin-port',
          String(adminPort),
          ...(o.extraArgs ?? []),
        ]);
        history.push(child.lines());
        const c = child;
        await eventually(
          async () => {
            if (c.proc.exitCode !== null) throw new Error(`replica ${name} exited ${c.proc.exitCode}:\n${c.logs()}`);
            return (await fetch(`http://127.0.0.1:${adminPort}/healthz`)).ok;
          },
          { timeoutMs: 20_000, description: `replica ${name} admin /healthz` },
        );
        return c;
      },
      allLines: () => history.flat(),
      async metric(metric) {
        const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
        const m = new RegExp(`^${metric}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
        return m ? Number(m[1]) : undefined;
      },
    });
  }
  return out;
}

/** `meshpilot apply -f` against the cluster (members listed, or all). */
export function applyConfig(cluster: EtcdCluster, paths: readonly string[], members?: readonly number[]): Promise<string> {
  return runMeshpilotAsync(['apply', ...paths.flatMap((p) => ['-f', p]), ...etcdFlags(cluster, { ...(members ? { members } : {}) })]);
}

/** The xDS port of the replica an Envoy's xds-grpc cluster has an active connection to (from Envoy's /clusters). */
export async function connectedReplicaPort(e: EnvoyProcess): Promise<number | undefined> {
  const text = await e.clusters();
  const m = /^xds-grpc::127\.0\.0\.1:(\d+)::cx_active::([1-9]\d*)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}
