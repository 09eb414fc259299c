// Parsers for v1 ServiceAccount, v1 Service and networking.istio.io WorkloadEntry.
import { isIP, isIPv4 } from 'node:net';
import { isScalar } from 'yaml';
import { TLS_MODE_LABEL, type Service, type ServiceAccount, type ServicePort, type WorkloadEntry } from '../model/index.js';
import { readLabels } from './common.js';
import { checkDns1123Label, checkDns1123Subdomain, checkPort } from './names.js';
import type { ObjectHeader } from './parse-document.js';
import type { DocReader, Field } from './yaml-reader.js';

/** Reads a `v1 ServiceAccount` (it has no spec; Kubernetes' pod-only fields are accepted with a warning). */
export function parseServiceAccount(r: DocReader, h: ObjectHeader): ServiceAccount {
  for (const key of ['secrets', 'imagePullSecrets', 'automountServiceAccountToken']) {
    const f = h.top[key];
    if (f) r.warn(f.at, f.path, 'ignored: meshpilot has no pods or secrets to mount');
  }
  return { namespace: h.namespace, name: h.name, labels: h.labels, origin: h.origin };
}

const SERVICE_UNSUPPORTED: Readonly<Record<string, string>> = Object.fromEntries(
  [
    'clusterIPs',
    'externalName',
    'externalIPs',
    'externalTrafficPolicy',
    'internalTrafficPolicy',
    'ipFamilies',
    'ipFamilyPolicy',
    'loadBalancerIP',
    'loadBalancerSourceRanges',
    'publishNotReadyAddresses',
    'sessionAffinity',
    'sessionAffinityConfig',
    'healthCheckNodePort',
    'allocateLoadBalancerNodePorts',
    'trafficDistribution',
  ].map((k) => [k, 'meshpilot services are ClusterIP-style names for their selected workloads']),
);

/** Reads a `v1 Service`: TCP ports and a non-empty selector. */
export function parseService(r: DocReader, h: ObjectHeader, spec: Field | undefined): Service {
  const service = { namespace: h.namespace, name: h.name, labels: h.labels, origin: h.origin };
  if (!spec) {
    r.error(h.at, 'spec', 'required: a Service needs spec.ports and spec.selector');
    return { ...service, ports: [], selector: {} };
  }
  const m = r.map(spec, ['ports', 'selector', 'type', 'clusterIP'], SERVICE_UNSUPPORTED) ?? {};
  const clusterIP = m.clusterIP ? parseClusterIp(r, m.clusterIP) : undefined;
  if (m.type) {
    const t = r.str(m.type);
    if (t !== undefined && t !== 'ClusterIP') r.error(m.type.at, m.type.path, `not supported: type ${t} (only ClusterIP)`);
  }
  const ports: ServicePort[] = [];
  if (!m.ports) r.error(spec.at, 'spec.ports', 'required: a Service needs at least one port');
  else {
    const items = r.list(m.ports) ?? [];
    if (items.length === 0 && m.ports) r.error(m.ports.at, m.ports.path, 'must list at least one port');
    const names = new Map<string, string>();
    const numbers = new Map<number, string>();
    for (const item of items) {
      const p = parseServicePort(r, item, items.length > 1);
      if (!p) continue;
      if (p.name !== undefined) {
        const first = names.get(p.name);
        if (first) r.error(item.at, `${item.path}.name`, `duplicate port name '${p.name}' (also ${first})`);
        else names.set(p.name, item.path);
      }
      const firstNumber = numbers.get(p.port);
      if (firstNumber) r.error(item.at, `${item.path}.port`, `duplicate port ${p.port} (also ${firstNumber})`);
      else numbers.set(p.port, item.path);
      ports.push(p);
    }
  }
  let selector = {};
  if (!m.selector)
    r.error(spec.at, 'spec.selector', 'required: meshpilot has no selector-less services (endpoints come from WorkloadEntries)');
  else {
    selector = readLabels(r, m.selector);
    if (Object.keys(selector).length === 0) r.error(m.selector.at, m.selector.path, 'must not be empty: an empty selector selects nothing');
  }
  return { ...service, ports, selector, ...(clusterIP !== undefined ? { clusterIP } : {}) };
}

// The service's virtual IP in capture mode; IPv4 only, like serviceCidr.
function parseClusterIp(r: DocReader, f: Field): string | undefined {
  const ip = r.str(f);
  if (ip === undefined) return undefined;
  if (ip === 'None') r.error(f.at, f.path, 'not supported: headless services (meshpilot services always have a virtual IP)');
  else if (!isIPv4(ip)) r.error(f.at, f.path, `'${ip}' is not an IPv4 address`);
  else return ip;
  return undefined;
}

function parseServicePort(r: DocReader, f: Field, nameRequired: boolean): ServicePort | undefined {
  const m = r.map(f, ['name', 'port', 'targetPort', 'protocol', 'appProtocol'], { nodePort: 'meshpilot has no node ports' });
  if (!m) return undefined;
  let name: string | undefined;
  if (m.name) {
    name = r.str(m.name);
    const problem = name !== undefined ? checkDns1123Label(name) : undefined;
    if (problem) r.error(m.name.at, m.name.path, problem);
  } else if (nameRequired) r.error(f.at, `${f.path}.name`, 'required when a Service has more than one port');
  let port: number | undefined;
  if (!m.port) r.error(f.at, `${f.path}.port`, 'required');
  else {
    port = r.int(m.port);
    const problem = port !== undefined ? checkPort(port) : undefined;
    if (problem) r.error(m.port.at, m.port.path, problem);
  }
  let targetPort = port;
  if (m.targetPort) {
    const tp = m.targetPort;
    if (isScalar(tp.node) && typeof tp.node.value === 'string') {
      r.error(tp.at, tp.path, 'not supported: named target ports; use a number (a WorkloadEntry maps port names with spec.ports)');
    } else {
      targetPort = r.int(tp);
      const problem = targetPort !== undefined ? checkPort(targetPort) : undefined;
      if (problem) r.error(tp.at, tp.path, problem);
    }
  }
  if (m.protocol) {
    const proto = r.str(m.protocol);
    if (proto !== undefined && proto !== 'TCP') r.error(m.protocol.at, m.protocol.path, `not supported: protocol ${proto} (only TCP)`);
  }
  let appProtocol: string | undefined;
  if (m.appProtocol) appProtocol = r.nonEmptyStr(m.appProtocol);
  if (port === undefined) return undefined;
  return {
    ...(name !== undefined ? { name } : {}),
    port,
    targetPort: targetPort ?? port,
    protocol: 'TCP',
    ...(appProtocol ? { appProtocol } : {}),
  };
}

/** Reads a WorkloadEntry: an IP literal address, endpoint labels, a service account, optional named ports. */
export function parseWorkloadEntry(r: DocReader, h: ObjectHeader, spec: Field | undefined): WorkloadEntry {
  const base = { namespace: h.namespace, name: h.name, metadataLabels: h.labels, origin: h.origin };
  if (!spec) {
    r.error(h.at, 'spec', 'required: a WorkloadEntry needs spec.address and spec.serviceAccount');
    return { ...base, address: '', labels: {}, serviceAccount: { namespace: h.namespace, name: '' }, ports: {}, sidecar: false };
  }
  const m =
    r.map(spec, ['address', 'ports', 'labels', 'serviceAccount'], {
      network: 'meshpilot has a single network',
      locality: 'meshpilot does no locality-aware routing',
      weight: 'meshpilot does no weighted load balancing',
    }) ?? {};
  let address = '';
  if (!m.address) r.error(spec.at, 'spec.address', 'required');
  else {
    const a = r.str(m.address);
    if (a !== undefined) {
      if (isIP(a) === 0)
        r.error(m.address.at, m.address.path, `'${a}' is not an IPv4 or IPv6 address (hostnames and unix sockets are not supported)`);
      else address = a;
    }
  }
  const labels = m.labels ? readLabels(r, m.labels) : {};
  let saName = '';
  if (!m.serviceAccount) r.error(spec.at, 'spec.serviceAccount', 'required: every workload runs as a service account of its namespace');
  else {
    const sa = r.str(m.serviceAccount);
    const problem = sa !== undefined ? checkDns1123Subdomain(sa) : undefined;
    if (problem) r.error(m.serviceAccount.at, m.serviceAccount.path, problem);
    else if (sa !== undefined) saName = sa;
  }
  const ports: Record<string, number> = {};
  for (const e of m.ports ? (r.entries(m.ports) ?? []) : []) {
    const nameProblem = checkDns1123Label(e.key);
    if (nameProblem) r.error(e.keyAt, e.value.path, `port name ${nameProblem}`);
    const n = r.int(e.value);
    const problem = n !== undefined ? checkPort(n) : undefined;
    if (problem) r.error(e.value.at, e.value.path, problem);
    else if (n !== undefined && !nameProblem) ports[e.key] = n;
  }
  return {
    ...base,
    address,
    labels,
    serviceAccount: { namespace: h.namespace, name: saName },
    ports,
    sidecar: labels[TLS_MODE_LABEL] === 'istio',
  };
}
