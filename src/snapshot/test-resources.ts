// Small real resources for tests of the snapshot and xDS layers.
import { Cluster, ClusterLoadAssignment, TypeUrl } from '../proto/index.js';
import { encodedResource, type EncodedResource } from './encoded-resource.js';

/** A STATIC cluster resource whose content varies with `port`. */
export function testCluster(name: string, port = 8080): EncodedResource {
  const msg = Cluster.fromPartial({
    name,
    connectTimeout: { seconds: 1, nanos: 0 },
    loadAssignment: {
      clusterName: name,
      endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '127.0.0.1', portValue: port } } } }] }],
    },
  });
  return encodedResource(TypeUrl.Cluster, name, Cluster, msg);
}

/** An endpoint assignment for an EDS cluster. */
export function testEndpoints(clusterName: string, port = 8080): EncodedResource {
  const msg = ClusterLoadAssignment.fromPartial({
    clusterName,
    endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '127.0.0.1', portValue: port } } } }] }],
  });
  return encodedResource(TypeUrl.ClusterLoadAssignment, clusterName, ClusterLoadAssignment, msg);
}
