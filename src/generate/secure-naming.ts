// What secure naming expects of each service port, named as the generators name it: the client's
// cluster, the service host, and the SPIFFE IDs its SAN matcher must list. `mtls report` compares
// this with what was actually pushed.
import type { TrustDomain } from '../identity/index.js';
import type { MeshModel, ServicePort, WorkloadEntry } from '../model/index.js';
import { outboundCluster, serviceHost } from './names.js';
import { allowedServerIds, portKind } from './resources.js';

/** One service port with the IDs its clients must accept and the workloads that serve it. */
export interface SecureNamingEntry {
  readonly host: string;
  readonly port: ServicePort;
  readonly kind: 'http' | 'tcp';
  readonly cluster: string;
  readonly expectedIds: readonly string[];
  readonly workloads: readonly WorkloadEntry[];
}

/** Lists every service port of the model with its expected server identities. */
export function secureNamingOf(model: MeshModel, trustDomain: TrustDomain): SecureNamingEntry[] {
  return model.services.flatMap((s) => {
    const host = serviceHost(s, model.settings.domainSuffix);
    const expectedIds = allowedServerIds(model, trustDomain, s);
    const workloads = model.workloadsOf(s);
    return s.ports.map((port) => ({ host, port, kind: portKind(port), cluster: outboundCluster(port.port, host), expectedIds, workloads }));
  });
}
