// The meshpilot side of the xDS benches: a shared view of realistic clusters, and the
// real snapshot cache and xDS server on a free loopback port, with an ACK counter.
import * as grpc from '@grpc/grpc-js';
import { DiscoveryRequest, sotwResponse, TypeUrl } from '../../src/proto/index.js';
import { silentLogger } from '../../src/observability/index.js';
import { createSnapshot, createSnapshotCache, type EncodedResource, type Snapshot, type SnapshotCache } from '../../src/snapshot/index.js';
import { createGrpcServer, createXdsServer, listen, shutdown, type XdsServer } from '../../src/xds/index.js';
import { unwrap } from '../../src/lib/index.js';
import { benchCluster } from './clusters.js';

/** Clusters per snapshot (about 300 bytes each). */
export const CLUSTERS = 50;

/** The view every simulated proxy shares: CLUSTERS clusters, one of which changes per push. */
export class MeshView {
  readonly #clusters: EncodedResource[];
  readonly #pushed = new Set<string>();
  #revision = 0;
  #snapshot: Snapshot;

  constructor() {
    this.#clusters = Array.from({ length: CLUSTERS }, (_, i) => benchCluster(i, 0));
    this.#snapshot = this.#build();
  }

  /** The current snapshot. */
  get snapshot(): Snapshot {
    return this.#snapshot;
  }

  /** Changes one cluster and returns the new snapshot; the others keep their EncodedResource, as an unaffected generator would. */
  change(): Snapshot {
    const rev = ++this.#revision;
    const i = rev % CLUSTERS;
    this.#clusters[i] = benchCluster(i, rev);
    return (this.#snapshot = this.#build());
  }

  /** Records the snapshot's (name, version) pairs as pushed; returns how many were new. */
  markPushed(snap: Snapshot): number {
    let fresh = 0;
    for (const r of snap.resources(TypeUrl.Cluster).values()) {
      const key = `${r.name}@${r.version()}`;
      if (!this.#pushed.has(key)) {
        this.#pushed.add(key);
        fresh++;
      }
    }
    return fresh;
  }

  #build(): Snapshot {
    return unwrap(createSnapshot(this.#clusters));
  }
}

/** The size of the CDS response meshpilot sends for `snap` and of the ACK a proxy answers with. */
export function messageSizes(snap: Snapshot): { response: number; ack: number } {
  const versionInfo = snap.typeVersion(TypeUrl.Cluster);
  const nonce = '1234';
  const chunks = [...snap.resources(TypeUrl.Cluster).values()].map((r) => r.sotwChunk());
  const response = sotwResponse({ versionInfo, typeUrl: TypeUrl.Cluster, nonce, chunks }).length;
  const ack = DiscoveryRequest.encode(
    DiscoveryRequest.fromPartial({ typeUrl: TypeUrl.Cluster, versionInfo, responseNonce: nonce }),
  ).finish().length;
  return { response, ack };
}

/** A running meshpilot xDS server for benches. */
export interface BenchControlPlane {
  readonly address: string;
  readonly cache: SnapshotCache;
  readonly xds: XdsServer;
  /** Resolves when `count` streams have ACKed `version` of CDS; call it before anything can ACK. */
  expectAcks(version: string, count: number, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the real snapshot cache and xDS server (silent logs) on 127.0.0.1 with a free port. */
export async function startControlPlane(): Promise<BenchControlPlane> {
  const cache = createSnapshotCache({ log: silentLogger });
  let target = '';
  let acked = 0;
  let want = 0;
  let done: (() => void) | undefined;
  const xds = createXdsServer({
    snapshots: cache,
    log: silentLogger,
    hooks: {
      onAck: (_p, typeUrl, version) => {
        if (typeUrl === TypeUrl.Cluster && version === target && ++acked === want) done?.();
      },
    },
  });
  const server = createGrpcServer();
  xds.register(server);
  const port = await listen(server, '127.0.0.1', 0, grpc.ServerCredentials.createInsecure());
  return {
    address: `127.0.0.1:${port}`,
    cache,
    xds,
    expectAcks: (version, count, timeoutMs) =>
      new Promise<void>((resolve, reject) => {
        target = version;
        acked = 0;
        want = count;
        const timer = setTimeout(() => reject(new Error(`xds: ${acked}/${want} ACKs of ${version} after ${timeoutMs} ms`)), timeoutMs);
        done = () => {
          clearTimeout(timer);
          done = undefined;
          resolve();
        };
      }),
    async stop() {
      xds.closeAll();
      await shutdown(server, 1_000);
    },
  };
}
