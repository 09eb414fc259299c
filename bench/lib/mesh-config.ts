// The mesh config of the real-path benchmark, written as Kubernetes-shaped YAML into a
// temporary directory that meshpilot watches: N WorkloadEntries, each with its own
// ServiceAccount, spread over SERVICES Services in NAMESPACES namespaces, with mesh-wide
// STRICT mTLS as most Istio meshes run. Addresses are in 127.1.0.0/16: config data only,
// nothing is ever sent to them. Later changes are new files dropped into the directory.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** Services in the mesh; every proxy sees all of them. */
export const SERVICES = 50;
/** Namespaces the services and workloads are spread over. */
export const NAMESPACES = 5;
/** The service port; the workloads' targetPort differs (the loader requires it). */
const SERVICE_PORT = 9080;
const TARGET_PORT = 8080;
const DOMAIN = 'cluster.local';

/** One simulated proxy's workload: what its node id and token are made of. */
export interface BenchWorkload {
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly address: string;
  /** Envoy's node id, as Istio's sidecars form it. */
  readonly nodeId: string;
}

/** A change to the config, not yet written. */
export interface Change {
  readonly kind: 'service' | 'workload';
  readonly namespace: string;
  readonly name: string;
  /** A string that appears in the bytes of exactly the resources the change creates or alters. */
  readonly marker: string;
  /** Writes the change's file into the watched directory (atomically). */
  write(): void;
}

/** A generated config directory. */
export interface MeshConfigDir {
  readonly dir: string;
  readonly workloads: readonly BenchWorkload[];
  /**
   * Change k: a new Service with one new workload (and its service account), which every sidecar
   * sees (a new cluster, its endpoints and a route). `marker` is its host, which only the new resources name.
   */
  addService(k: number): Change;
  /**
   * Change k: one more WorkloadEntry in service 7, running as that service's first service account,
   * so only that service's endpoints change (secure naming stays the same). `marker` is its address.
   */
  addEndpoint(k: number): Change;
  remove(): void;
}

const ns = (i: number) => `ns-${i % NAMESPACES}`;
const svc = (i: number) => `svc-${String(i).padStart(2, '0')}`;
/** Workload j's address: 127.1.0.1 onwards (127.1.0.0/16 holds 65,535 of them). */
const address = (j: number) => `127.1.${(j + 1) >> 8}.${(j + 1) & 255}`;

function workload(j: number): BenchWorkload {
  const s = j % SERVICES;
  const name = `wl-${String(j).padStart(5, '0')}`;
  const namespace = ns(s);
  const addr = address(j);
  return {
    name,
    namespace,
    serviceAccount: name,
    address: addr,
    nodeId: `sidecar~${addr}~${name}.${namespace}~${namespace}.svc.${DOMAIN}`,
  };
}

function service(name: string, namespace: string, app: string, port: number): object {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { selector: { app }, ports: [{ name: 'http', port, targetPort: TARGET_PORT }] },
  };
}

function serviceAccount(name: string, namespace: string): object {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } };
}

function workloadEntry(name: string, namespace: string, addr: string, sa: string, app: string): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: { name, namespace },
    spec: { address: addr, serviceAccount: sa, labels: { app, 'security.istio.io/tlsMode': 'istio' } },
  };
}

const docs = (objs: readonly object[]) => objs.map((o) => stringify(o)).join('---\n');

/** Writes a file whole under a name the loader ignores, then renames it in, so a reload never reads half of it. */
function writeAtomically(dir: string, name: string, text: string): void {
  const tmp = join(dir, `.${name}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(dir, name));
}

/** Writes the config of an `n`-workload mesh into a new temporary directory. */
export function writeMeshConfig(n: number): MeshConfigDir {
  const dir = mkdtempSync(join(tmpdir(), `meshpilot-bench-${n}-`));
  const workloads = Array.from({ length: n }, (_, j) => workload(j));
  writeFileSync(
    join(dir, 'mesh.yaml'),
    docs([
      { apiVersion: 'meshpilot.io/v1alpha1', kind: 'MeshConfig', metadata: { name: 'mesh' }, spec: { trustDomain: DOMAIN } },
      {
        apiVersion: 'security.istio.io/v1',
        kind: 'PeerAuthentication',
        metadata: { name: 'default', namespace: 'istio-system' },
        spec: { mtls: { mode: 'STRICT' } },
      },
    ]),
  );
  writeFileSync(join(dir, 'services.yaml'), docs(Array.from({ length: SERVICES }, (_, i) => service(svc(i), ns(i), svc(i), SERVICE_PORT))));
  writeFileSync(
    join(dir, 'workloads.yaml'),
    docs(
      workloads.flatMap((w, j) => [
        serviceAccount(w.serviceAccount, w.namespace),
        workloadEntry(w.name, w.namespace, w.address, w.serviceAccount, svc(j % SERVICES)),
      ]),
    ),
  );
  return {
    dir,
    workloads,
    addService(k) {
      // Zero-padded, so that no host is a prefix of another and a byte search finds only this one.
      const name = `xchg-${String(k).padStart(3, '0')}`;
      return {
        kind: 'service',
        namespace: ns(0),
        name,
        marker: `${name}.${ns(0)}.svc.${DOMAIN}`,
        // The service selects a workload of its own: a second service over existing workloads with
        // the same targetPort makes meshpilot build a duplicate inbound cluster (see the report).
        write: () =>
          writeAtomically(
            dir,
            `change-${name}.yaml`,
            docs([
              serviceAccount(name, ns(0)),
              workloadEntry(name, ns(0), `127.1.200.${k}`, name, name),
              service(name, ns(0), name, SERVICE_PORT),
            ]),
          ),
      };
    },
    addEndpoint(k) {
      // 127.1.(250-k).77 is outside the workloads' range (and the new services' 127.1.200.k), and no address is a prefix of it.
      const addr = `127.1.${250 - k}.77`;
      const owner = workloads[7 % workloads.length]!;
      const name = `extra-${k}`;
      return {
        kind: 'workload',
        namespace: owner.namespace,
        name,
        marker: addr,
        write: () =>
          writeAtomically(
            dir,
            `endpoint-${k}.yaml`,
            docs([workloadEntry(name, owner.namespace, addr, owner.serviceAccount, svc(7 % SERVICES))]),
          ),
      };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
