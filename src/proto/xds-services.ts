import type { ServiceDefinition } from '@grpc/grpc-js';
import { DeltaDiscoveryRequest, DiscoveryRequest } from '../../generated/envoy/service/discovery/v3/discovery.js';
import { TypeUrl } from './type-url.js';

/** A request that could not be decoded: the stream handler logs it and closes the stream. */
export interface GarbledRequest {
  readonly garbled: true;
  readonly error: string;
  readonly size: number;
}

/** What an xDS stream handler reads: a decoded request or a garbled marker. */
export type Incoming<T> = T | GarbledRequest;

/** Tells a garbled marker from a decoded request. */
export function isGarbled<T extends object>(m: Incoming<T>): m is GarbledRequest {
  return (m as GarbledRequest).garbled === true;
}

function tolerant<T>(decode: (b: Buffer) => T): (b: Buffer) => Incoming<T> {
  // grpc-js would end the call with a bare INTERNAL status if decoding threw; decoding
  // to a marker lets the handler log which proxy sent it before closing the stream.
  return (b) => {
    try {
      return decode(b);
    } catch (e) {
      return { garbled: true, error: (e as Error).message, size: b.length };
    }
  };
}

const sotwMethod = (path: string) => ({
  path,
  requestStream: true,
  responseStream: true,
  requestSerialize: (v: DiscoveryRequest) => Buffer.from(DiscoveryRequest.encode(v).finish()),
  requestDeserialize: tolerant((b: Buffer) => DiscoveryRequest.decode(b)),
  // Responses arrive already encoded (see wire.ts): the bytes are shared between streams.
  responseSerialize: (v: Buffer) => v,
  responseDeserialize: (b: Buffer) => b,
});

const deltaMethod = (path: string) => ({
  ...sotwMethod(path),
  requestSerialize: (v: DeltaDiscoveryRequest) => Buffer.from(DeltaDiscoveryRequest.encode(v).finish()),
  requestDeserialize: tolerant((b: Buffer) => DeltaDiscoveryRequest.decode(b)),
});

/** One xDS gRPC service: its SotW and delta streaming methods, and the type it is pinned to (none for ADS). */
export interface XdsServiceSpec {
  readonly name: string;
  readonly typeUrl?: TypeUrl;
  readonly sotwMethod: string;
  readonly deltaMethod: string;
  readonly definition: ServiceDefinition;
}

function spec(pkg: string, service: string, sotw: string, delta: string, typeUrl?: TypeUrl): XdsServiceSpec {
  const base = `/${pkg}.${service}/`;
  return {
    name: `${pkg}.${service}`,
    typeUrl,
    sotwMethod: sotw,
    deltaMethod: delta,
    definition: {
      [sotw]: sotwMethod(base + sotw[0]!.toUpperCase() + sotw.slice(1)),
      [delta]: deltaMethod(base + delta[0]!.toUpperCase() + delta.slice(1)),
    },
  };
}

/** ADS and the per-type discovery services, with pre-encoded response serializers. */
export const xdsServices: readonly XdsServiceSpec[] = [
  spec('envoy.service.discovery.v3', 'AggregatedDiscoveryService', 'streamAggregatedResources', 'deltaAggregatedResources'),
  spec('envoy.service.listener.v3', 'ListenerDiscoveryService', 'streamListeners', 'deltaListeners', TypeUrl.Listener),
  spec('envoy.service.route.v3', 'RouteDiscoveryService', 'streamRoutes', 'deltaRoutes', TypeUrl.RouteConfiguration),
  spec('envoy.service.cluster.v3', 'ClusterDiscoveryService', 'streamClusters', 'deltaClusters', TypeUrl.Cluster),
  spec('envoy.service.endpoint.v3', 'EndpointDiscoveryService', 'streamEndpoints', 'deltaEndpoints', TypeUrl.ClusterLoadAssignment),
  spec('envoy.service.secret.v3', 'SecretDiscoveryService', 'streamSecrets', 'deltaSecrets', TypeUrl.Secret),
];
