// From a generated resource's name back to the config object that produced it, so that a
// NACK points at a YAML file and line. Names follow Istio's conventions (DESIGN.md "Names"):
// outbound clusters, endpoints and TCP listeners name their service host; inbound
// listeners and clusters name a port of the proxy's own workload.
import { workloadPortFor, type MeshModel, type ObjectMeta, type Service, type WorkloadEntry } from '../model/index.js';
import { OUTBOUND_HTTP_LISTENER, OUTBOUND_HTTP_ROUTE, SDS_DEFAULT, serviceHost } from '../generate/index.js';
import { TypeUrl } from '../proto/index.js';
import type { ResourceOrigin } from './proxy-status.js';

const OUTBOUND = /^(?:outbound|outbound_tcp)\|(\d+)\|\|(.+)$/;
const INBOUND_LISTENER = /^inbound\|(\d+)$/;
const INBOUND_CLUSTER = /^inbound\|(\d+)\|\|$/;

/** The object behind a resource of one workload's proxy, or undefined when no single object made it. */
export function resolveOrigin(
  model: MeshModel,
  workloadKey: string,
  typeUrl: string,
  resourceName: string,
  hint = '',
): ResourceOrigin | undefined {
  const [ns, name] = workloadKey.split('/') as [string, string];
  const workload = model.workload(ns, name);
  const domain = model.settings.domainSuffix;

  const outbound = OUTBOUND.exec(resourceName);
  if (outbound) {
    const port = Number(outbound[1]);
    const service = model.services.find((s) => serviceHost(s, domain) === outbound[2]);
    return service ? servicePortOrigin(service, (p) => p.port === port) : undefined;
  }
  if (!workload) return undefined;
  const inboundListener = INBOUND_LISTENER.exec(resourceName);
  if (inboundListener) {
    const port = Number(inboundListener[1]);
    const service = model.servicesOf(workload).find((s) => s.ports.some((p) => p.port === port));
    return service ? servicePortOrigin(service, (p) => p.port === port) : objectOrigin('WorkloadEntry', workload);
  }
  const inboundCluster = INBOUND_CLUSTER.exec(resourceName);
  if (inboundCluster) {
    const port = Number(inboundCluster[1]);
    const match = (p: Service['ports'][number]) => workloadPortFor(p, workload) === port;
    const service = model.servicesOf(workload).find((s) => s.ports.some(match));
    return service ? servicePortOrigin(service, match) : objectOrigin('WorkloadEntry', workload);
  }
  // The outbound route holds every HTTP service: Envoy's message names the host it refused, if any.
  if (typeUrl === TypeUrl.RouteConfiguration) {
    if (resourceName !== OUTBOUND_HTTP_ROUTE) return undefined;
    const service = model.services.find((s) => hint.includes(serviceHost(s, domain)) || hint.includes(`${s.name}.${s.namespace}`));
    return service ? objectOrigin('Service', service) : undefined;
  }
  if (resourceName === SDS_DEFAULT || resourceName === OUTBOUND_HTTP_LISTENER) return objectOrigin('WorkloadEntry', workload);
  return undefined;
}

function servicePortOrigin(service: Service, match: (p: Service['ports'][number]) => boolean): ResourceOrigin {
  const i = service.ports.findIndex(match);
  const pos = i >= 0 ? service.origin?.fields?.get(`spec.ports[${i}].port`) : undefined;
  return objectOrigin('Service', service, pos?.line);
}

function objectOrigin(kind: string, o: ObjectMeta | WorkloadEntry, line?: number): ResourceOrigin {
  const at = o.origin ? `${o.origin.file}:${line ?? o.origin.line}` : undefined;
  return { kind, namespace: o.namespace, name: o.name, ...(at ? { at } : {}) };
}
