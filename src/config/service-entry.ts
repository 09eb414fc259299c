// Parser for networking.istio.io ServiceEntry, field by field after istio/api
// networking/v1alpha3/service_entry.proto, with the structural checks of Istio's validation.
import { isIP, isIPv4 } from 'node:net';
import type {
  Labels,
  ServiceEntry,
  ServiceEntryEndpoint,
  ServiceEntryLocation,
  ServiceEntryPort,
  ServiceEntryResolution,
} from '../model/index.js';
import { readLabels } from './common.js';
import { checkDns1123Label, checkDns1123Subdomain, checkPort } from './names.js';
import type { ObjectHeader } from './parse-document.js';
import type { DocReader, Field } from './yaml-reader.js';

/** Istio's port protocols meshpilot proxies: HTTP kinds are routed by Host, the rest are passed as TCP. */
export const SERVICE_ENTRY_PROTOCOLS: Readonly<Record<string, 'http' | 'tcp'>> = {
  HTTP: 'http',
  HTTP2: 'http',
  GRPC: 'http',
  'GRPC-WEB': 'http',
  HTTPS: 'tcp',
  TLS: 'tcp',
  TCP: 'tcp',
  MONGO: 'tcp',
  MYSQL: 'tcp',
  REDIS: 'tcp',
};

const LOCATIONS: readonly ServiceEntryLocation[] = ['MESH_EXTERNAL', 'MESH_INTERNAL'];
const RESOLUTIONS: readonly ServiceEntryResolution[] = ['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN'];

/** Reads `exportTo`: meshpilot supports only `*` (visible to every namespace, Istio's default). */
export function readExportTo(r: DocReader, f: Field | undefined): void {
  if (!f) return;
  for (const e of r.strList(f))
    if (e.value !== '*')
      r.error(
        e.field.at,
        e.field.path,
        `valid Istio value '${e.value}', not supported by meshpilot: exportTo '*' only (every namespace sees the object)`,
      );
}

/** Reads a ServiceEntry: hosts, ports, location, resolution, endpoints or a workload selector, SANs. */
export function parseServiceEntry(r: DocReader, h: ObjectHeader, spec: Field | undefined): ServiceEntry {
  const base = { namespace: h.namespace, name: h.name, origin: h.origin };
  const empty: ServiceEntry = {
    ...base,
    hosts: [],
    addresses: [],
    ports: [],
    location: 'MESH_EXTERNAL',
    resolution: 'NONE',
    endpoints: [],
    subjectAltNames: [],
  };
  if (!spec) {
    r.error(h.at, 'spec', 'required: a ServiceEntry needs spec.hosts and spec.ports');
    return empty;
  }
  const m =
    r.map(spec, [
      'hosts',
      'addresses',
      'ports',
      'location',
      'resolution',
      'endpoints',
      'workloadSelector',
      'exportTo',
      'subjectAltNames',
    ]) ?? {};
  const hosts: string[] = [];
  if (!m.hosts) r.error(spec.at, 'spec.hosts', 'required: at least one host');
  else {
    const list = r.strList(m.hosts);
    if (list.length === 0) r.error(m.hosts.at, m.hosts.path, 'must list at least one host');
    for (const e of list) {
      const host = e.value.toLowerCase();
      if (host.includes('*'))
        r.error(e.field.at, e.field.path, `valid Istio host '${e.value}', not supported by meshpilot: wildcard hosts (name each host)`);
      else {
        const problem = checkDns1123Subdomain(host);
        if (problem) r.error(e.field.at, e.field.path, problem);
        else if (hosts.includes(host)) r.error(e.field.at, e.field.path, `duplicate host '${e.value}'`);
        else hosts.push(host);
      }
    }
  }
  const addresses: string[] = [];
  for (const e of m.addresses ? r.strList(m.addresses) : []) {
    // A /32 is one address, as Istio writes single addresses in CIDR form.
    const single = e.value.endsWith('/32') ? e.value.slice(0, -3) : e.value;
    if (isIPv4(single)) addresses.push(single);
    else if (e.value.includes('/') || isIP(e.value) === 6)
      r.error(
        e.field.at,
        e.field.path,
        `valid Istio address '${e.value}', not supported by meshpilot: IPv4 addresses (or /32) only, no wider CIDR ranges, no IPv6`,
      );
    else r.error(e.field.at, e.field.path, `'${e.value}' is not an IP address`);
  }
  const ports = m.ports ? readPorts(r, m.ports) : [];
  if (!m.ports) r.error(spec.at, 'spec.ports', 'required: at least one port');
  const location = m.location ? readEnum(r, m.location, LOCATIONS) : undefined;
  const resolution = m.resolution ? readEnum(r, m.resolution, RESOLUTIONS) : undefined;
  const res = resolution ?? 'NONE';
  // networking's WorkloadSelector has `labels` (DestinationRule's, from istio.type, has `matchLabels`).
  let workloadSelector: Labels | undefined;
  if (m.workloadSelector) {
    const ws = r.map(m.workloadSelector, ['labels']);
    workloadSelector = ws?.labels ? readLabels(r, ws.labels) : undefined;
    if (!workloadSelector || Object.keys(workloadSelector).length === 0) {
      r.error(
        m.workloadSelector.at,
        `${m.workloadSelector.path}.labels`,
        'required: the labels of the WorkloadEntries that are its endpoints',
      );
      workloadSelector = undefined;
    }
  }
  const endpoints = m.endpoints ? readEndpoints(r, m.endpoints, res, ports) : [];
  if (m.endpoints && workloadSelector)
    r.error(m.workloadSelector!.at, m.workloadSelector!.path, 'only one of endpoints and workloadSelector may be set');
  if (res === 'NONE' && m.endpoints) r.error(m.endpoints.at, m.endpoints.path, 'resolution NONE takes no endpoints: use STATIC or DNS');
  if (res === 'STATIC' && !m.endpoints && !workloadSelector)
    r.error(spec.at, 'spec.endpoints', 'resolution STATIC needs endpoints or a workloadSelector');
  if (workloadSelector && res !== 'STATIC')
    r.error(m.workloadSelector!.at, m.workloadSelector!.path, `a workloadSelector needs resolution STATIC (not ${res})`);
  readExportTo(r, m.exportTo);
  const subjectAltNames = m.subjectAltNames ? r.strList(m.subjectAltNames).map((e) => e.value) : [];
  return {
    ...base,
    hosts,
    addresses,
    ports,
    location: location ?? 'MESH_EXTERNAL',
    resolution: res,
    endpoints,
    ...(workloadSelector ? { workloadSelector } : {}),
    subjectAltNames,
  };
}

function readEnum<T extends string>(r: DocReader, f: Field, values: readonly T[]): T | undefined {
  const v = r.str(f);
  if (v === undefined) return undefined;
  if ((values as readonly string[]).includes(v)) return v as T;
  r.error(f.at, f.path, `unknown value '${v}': one of ${values.join(', ')}`);
  return undefined;
}

function readPorts(r: DocReader, f: Field): ServiceEntryPort[] {
  const items = r.list(f) ?? [];
  if (items.length === 0) r.error(f.at, f.path, 'must list at least one port');
  const out: ServiceEntryPort[] = [];
  const names = new Set<string>();
  const numbers = new Set<number>();
  for (const item of items) {
    const m = r.map(item, ['number', 'protocol', 'name', 'targetPort']);
    if (!m) continue;
    const number = m.number ? r.int(m.number) : undefined;
    if (!m.number) r.error(item.at, `${item.path}.number`, 'required');
    else if (number !== undefined) {
      const problem = checkPort(number);
      if (problem) r.error(m.number.at, m.number.path, problem);
      else if (numbers.has(number)) r.error(m.number.at, m.number.path, `duplicate port ${number}`);
    }
    let protocol: string | undefined;
    if (!m.protocol) r.error(item.at, `${item.path}.protocol`, `required: one of ${Object.keys(SERVICE_ENTRY_PROTOCOLS).join(', ')}`);
    else {
      const p = r.str(m.protocol)?.toUpperCase();
      if (p === 'UDP')
        r.error(m.protocol.at, m.protocol.path, 'valid Istio protocol UDP, not supported by meshpilot (Envoy sidecars proxy TCP)');
      else if (p !== undefined && !(p in SERVICE_ENTRY_PROTOCOLS))
        r.error(m.protocol.at, m.protocol.path, `unknown protocol '${p}': one of ${Object.keys(SERVICE_ENTRY_PROTOCOLS).join(', ')}`);
      else if (p !== undefined) protocol = p;
    }
    let name = number !== undefined ? `${(protocol ?? 'tcp').toLowerCase()}-${number}` : '';
    if (m.name) {
      const n = r.str(m.name);
      const problem = n !== undefined ? checkDns1123Label(n) : undefined;
      if (problem) r.error(m.name.at, m.name.path, problem);
      else if (n !== undefined) name = n;
    }
    if (names.has(name)) r.error(item.at, `${item.path}.name`, `duplicate port name '${name}'`);
    let targetPort: number | undefined;
    if (m.targetPort) {
      targetPort = r.int(m.targetPort);
      const problem = targetPort !== undefined ? checkPort(targetPort) : undefined;
      if (problem) r.error(m.targetPort.at, m.targetPort.path, problem);
    }
    if (number === undefined || protocol === undefined || checkPort(number) || numbers.has(number)) continue;
    numbers.add(number);
    names.add(name);
    out.push({ number, protocol, name, ...(targetPort !== undefined && !checkPort(targetPort) ? { targetPort } : {}) });
  }
  return out;
}

function readEndpoints(
  r: DocReader,
  f: Field,
  resolution: ServiceEntryResolution,
  ports: readonly ServiceEntryPort[],
): ServiceEntryEndpoint[] {
  const out: ServiceEntryEndpoint[] = [];
  for (const item of r.list(f) ?? []) {
    const m = r.map(item, ['address', 'ports', 'labels', 'serviceAccount'], {
      network: 'meshpilot has a single network',
      locality: 'meshpilot does no locality-aware routing',
      weight: 'meshpilot does no weighted load balancing',
    });
    if (!m) continue;
    let address: string | undefined;
    if (!m.address) r.error(item.at, `${item.path}.address`, 'required');
    else {
      const a = r.nonEmptyStr(m.address);
      if (a !== undefined && a.startsWith('unix://'))
        r.error(m.address.at, m.address.path, `valid Istio address '${a}', not supported by meshpilot: Unix domain sockets`);
      else if (a !== undefined && resolution === 'STATIC' && isIP(a) === 0)
        r.error(m.address.at, m.address.path, `'${a}' is not an IP address: resolution STATIC takes IP addresses (use DNS for hostnames)`);
      else if (a !== undefined && isIP(a) === 0 && checkDns1123Subdomain(a.toLowerCase()))
        r.error(m.address.at, m.address.path, `'${a}' is neither an IP address nor a hostname`);
      else address = a;
    }
    const epPorts: Record<string, number> = {};
    for (const e of m.ports ? (r.entries(m.ports) ?? []) : []) {
      if (!ports.some((p) => p.name === e.key))
        r.error(e.keyAt, e.value.path, `no port named '${e.key}' in spec.ports (${ports.map((p) => p.name).join(', ')})`);
      const n = r.int(e.value);
      const problem = n !== undefined ? checkPort(n) : undefined;
      if (problem) r.error(e.value.at, e.value.path, problem);
      else if (n !== undefined) epPorts[e.key] = n;
    }
    const labels: Labels = m.labels ? readLabels(r, m.labels) : {};
    let serviceAccount: string | undefined;
    if (m.serviceAccount) {
      serviceAccount = r.str(m.serviceAccount);
      const problem = serviceAccount !== undefined ? checkDns1123Subdomain(serviceAccount) : undefined;
      if (problem) r.error(m.serviceAccount.at, m.serviceAccount.path, problem);
    }
    if (address !== undefined) out.push({ address, ports: epPorts, labels, ...(serviceAccount ? { serviceAccount } : {}) });
  }
  return out;
}
