// ServiceEntry ports seen as service ports, so the code that builds a Service's listeners,
// clusters and endpoints builds a ServiceEntry's too.
import { selectorMatches } from './labels.js';
import type { MeshModel } from './mesh-model.js';
import type { ServiceEntry, ServiceEntryPort, ServicePort, WorkloadEntry } from './types.js';

// Istio's protocols Envoy routes by Host; the others (HTTPS and TLS among them, encrypted by the
// app) are passed through as TCP.
const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);

/** Whether a ServiceEntry port is routed by Host (`http`) or passed through (`tcp`). */
export const entryPortKind = (p: ServiceEntryPort): 'http' | 'tcp' => (HTTP_PROTOCOLS.has(p.protocol) ? 'http' : 'tcp');

/** A ServiceEntry port as a service port: its number, target port, and `appProtocol` naming its kind (`http` or `tcp`). */
export function entryServicePort(p: ServiceEntryPort): ServicePort {
  return { name: p.name, port: p.number, targetPort: p.targetPort ?? p.number, protocol: 'TCP', appProtocol: entryPortKind(p) };
}

/** The ServiceEntries whose workloadSelector picks this workload. */
export function entriesOf(model: MeshModel, w: WorkloadEntry): ServiceEntry[] {
  return model.serviceEntries.filter(
    (e) => e.workloadSelector !== undefined && e.namespace === w.namespace && selectorMatches(e.workloadSelector, w.labels),
  );
}

/** Every port a workload serves: its Services' ports and those of the ServiceEntries that select it, first of each number kept. */
export function portsServedBy(model: MeshModel, w: WorkloadEntry): ServicePort[] {
  const out: ServicePort[] = [];
  const seen = new Set<number>();
  const all = [...model.servicesOf(w).flatMap((s) => s.ports), ...entriesOf(model, w).flatMap((e) => e.ports.map(entryServicePort))];
  for (const p of all) {
    if (seen.has(p.port)) continue; // two services on one port share the listener
    seen.add(p.port);
    out.push(p);
  }
  return out;
}
