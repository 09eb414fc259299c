// In loopback mode a sidecar takes the service port on its workload's own address and forwards to
// the app on the target port. A target port equal to the service port would leave the app on the
// very address and port clients are sent to, reachable without its sidecar (or fighting Envoy for
// the bind). Capture mode has no such conflict: inbound is redirected to Envoy's 15006 first.
import { workloadPortFor, type Service, type SourceRef, type WorkloadEntry } from '../model/index.js';

/** One service port whose app port equals it on a workload with a sidecar, and where to point. */
export interface LoopbackPortConflict {
  readonly origin: SourceRef | undefined;
  readonly path: string;
  readonly message: string;
}

/** Returns every (service port, sidecar workload) pair whose app port equals the service port: refused in loopback mode. */
export function loopbackPortConflicts(
  services: readonly Service[],
  workloadsOf: (s: Service) => readonly WorkloadEntry[],
): LoopbackPortConflict[] {
  const out: LoopbackPortConflict[] = [];
  for (const s of services) {
    s.ports.forEach((port, i) => {
      for (const w of workloadsOf(s)) {
        if (!w.sidecar || workloadPortFor(port, w) !== port.port) continue;
        const overridden = port.name !== undefined && w.ports[port.name] !== undefined;
        const why =
          `in loopback mode (MeshConfig spec.captureMode) the sidecar of ${w.namespace}/${w.name} takes port ${port.port} ` +
          `on ${w.address} and forwards to the app's port; the app on the same port would be reachable without its sidecar. ` +
          'Give the app another port, or run in capture mode (captureMode: iptables)';
        if (overridden)
          out.push({
            origin: w.origin,
            path: `spec.ports.${port.name}`,
            message: `app port equals service ${s.namespace}/${s.name} port: ${why}`,
          });
        else {
          const hasTarget = s.origin?.fields?.has(`spec.ports[${i}].targetPort`) === true;
          out.push({
            origin: s.origin,
            path: `spec.ports[${i}].${hasTarget ? 'targetPort' : 'port'}`,
            message: `targetPort equals port ${port.port}${hasTarget ? '' : ' (targetPort defaults to port)'}: ${why}`,
          });
        }
      }
    });
  }
  return out;
}
