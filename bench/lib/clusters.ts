// Realistic clusters for the xDS benches: a STATIC cluster with seven endpoints encodes
// to about 300 bytes, the size of a typical sidecar's outbound cluster.
import { Cluster, TypeUrl } from '../../src/proto/index.js';
import { encodedResource, type EncodedResource } from '../../src/snapshot/index.js';

/** Endpoints per cluster. */
const ENDPOINTS = 7;

/** Cluster `i` of a mesh; `revision` changes its endpoints' port, so each revision is a new version. */
export function benchCluster(i: number, revision: number): EncodedResource {
  const name = `outbound|8080||svc-${i}.bench.svc.cluster.local`;
  const port = 10_000 + (revision % 50_000);
  const msg = Cluster.fromPartial({
    name,
    connectTimeout: { seconds: 1, nanos: 0 },
    loadAssignment: {
      clusterName: name,
      endpoints: [
        {
          lbEndpoints: Array.from({ length: ENDPOINTS }, (_, e) => ({
            endpoint: { address: { socketAddress: { address: `10.${i % 250}.${e}.${(i * 7 + e) % 250}`, portValue: port } } },
          })),
        },
      ],
    },
  });
  return encodedResource(TypeUrl.Cluster, name, Cluster, msg);
}
