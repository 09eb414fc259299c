// Parser for networking.istio.io DestinationRule, field by field after istio/api
// networking/v1alpha3/destination_rule.proto. A field that changes how traffic is secured and that
// meshpilot cannot do is refused (fail closed); one that only tunes traffic is ignored with a warning.
import { dirname, isAbsolute, resolve } from 'node:path';
import {
  parseDuration,
  type ClientTls,
  type ClientTlsMode,
  type ConnectionPoolSettings,
  type DestinationRule,
  type DestinationSubset,
  type LoadBalancerSettings,
  type OutlierDetectionSettings,
  type PortTrafficPolicy,
  type TrafficPolicy,
} from '../model/index.js';
import { readLabels, readWorkloadSelector } from './common.js';
import { checkDns1123Label, checkDns1123Subdomain, checkPort } from './names.js';
import type { ObjectHeader } from './parse-document.js';
import { readExportTo } from './service-entry.js';
import type { DocReader, Field } from './yaml-reader.js';

type IstioField = { readonly refuse: boolean; readonly why: string };
const refuse = (why: string): IstioField => ({ refuse: true, why });
const ignore = (why: string): IstioField => ({ refuse: false, why });

// Reads a mapping whose Istio-only fields are refused or ignored (with a warning) as the table says.
function mapWith(r: DocReader, f: Field, known: readonly string[], istio: Readonly<Record<string, IstioField>>): Record<string, Field> {
  const m = r.map(f, [...known, ...Object.keys(istio)]) ?? {};
  for (const [key, field] of Object.entries(m)) {
    const i = istio[key];
    if (!i) continue;
    if (i.refuse) r.error(field.at, field.path, `valid Istio field '${key}', not supported by meshpilot: ${i.why}`);
    else r.warn(field.at, field.path, `valid Istio field '${key}', not supported by meshpilot (ignored): ${i.why}`);
    delete m[key];
  }
  return m;
}

const TLS_MODES: readonly ClientTlsMode[] = ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'];
const SIMPLE_LB = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'LEAST_CONN', 'PASSTHROUGH', 'UNSPECIFIED'] as const;

/** Reads a DestinationRule: host, traffic policy (per port too), subsets, workload selector. */
export function parseDestinationRule(r: DocReader, h: ObjectHeader, spec: Field | undefined): DestinationRule {
  const base = { namespace: h.namespace, name: h.name, origin: h.origin };
  if (!spec) {
    r.error(h.at, 'spec', 'required: a DestinationRule needs spec.host');
    return { ...base, host: '', subsets: [] };
  }
  const m = r.map(spec, ['host', 'trafficPolicy', 'subsets', 'exportTo', 'workloadSelector']) ?? {};
  let host = '';
  if (!m.host) r.error(spec.at, 'spec.host', 'required');
  else {
    const s = r.nonEmptyStr(m.host)?.toLowerCase();
    const bare = s?.startsWith('*.') ? s.slice(2) : s;
    const problem = bare !== undefined ? (bare === '*' ? undefined : checkDns1123Subdomain(bare)) : undefined;
    if (s === '*' || s === undefined) {
      if (s === '*') r.error(m.host.at, m.host.path, "valid Istio host '*', not supported by meshpilot: name a host or a '*.suffix'");
    } else if (problem) r.error(m.host.at, m.host.path, problem);
    else host = s;
  }
  const trafficPolicy = m.trafficPolicy ? readTrafficPolicy(r, m.trafficPolicy, true) : undefined;
  const subsets: DestinationSubset[] = [];
  for (const item of m.subsets ? (r.list(m.subsets) ?? []) : []) {
    const s = r.map(item, ['name', 'labels', 'trafficPolicy']);
    if (!s) continue;
    const name = s.name ? r.nonEmptyStr(s.name) : undefined;
    if (!s.name) r.error(item.at, `${item.path}.name`, 'required');
    const problem = name !== undefined ? checkDns1123Label(name) : undefined;
    if (problem) r.error(s.name!.at, s.name!.path, problem);
    if (name !== undefined && subsets.some((o) => o.name === name)) r.error(s.name!.at, s.name!.path, `duplicate subset '${name}'`);
    const labels = s.labels ? readLabels(r, s.labels) : {};
    const tp = s.trafficPolicy ? readTrafficPolicy(r, s.trafficPolicy, true) : undefined;
    if (name !== undefined && !problem) subsets.push({ name, labels, ...(tp ? { trafficPolicy: tp } : {}) });
  }
  readExportTo(r, m.exportTo);
  const workloadSelector = m.workloadSelector ? readWorkloadSelector(r, m.workloadSelector) : undefined;
  return { ...base, host, ...(trafficPolicy ? { trafficPolicy } : {}), subsets, ...(workloadSelector ? { workloadSelector } : {}) };
}

function readTrafficPolicy(r: DocReader, f: Field, withPorts: boolean): TrafficPolicy {
  const m = mapWith(r, f, ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls', ...(withPorts ? ['portLevelSettings'] : [])], {
    tunnel: refuse('meshpilot does not tunnel upstream connections'),
    proxyProtocol: refuse('meshpilot sends no PROXY protocol header'),
    retryBudget: ignore('meshpilot sets no retry budgets'),
  });
  const portLevelSettings: Record<number, PortTrafficPolicy> = {};
  for (const item of m.portLevelSettings ? (r.list(m.portLevelSettings) ?? []) : []) {
    const pm = r.map(item, ['port', 'loadBalancer', 'connectionPool', 'outlierDetection', 'tls']);
    if (!pm) continue;
    let port: number | undefined;
    if (!pm.port) r.error(item.at, `${item.path}.port`, 'required');
    else {
      const pf = r.map(pm.port, ['number']);
      if (pf?.number) {
        port = r.int(pf.number);
        const problem = port !== undefined ? checkPort(port) : undefined;
        if (problem) {
          r.error(pf.number.at, pf.number.path, problem);
          port = undefined;
        }
      } else r.error(pm.port.at, `${pm.port.path}.number`, 'required');
    }
    const settings = readPortPolicy(r, pm);
    if (port !== undefined) {
      if (portLevelSettings[port]) r.error(pm.port!.at, pm.port!.path, `duplicate port ${port} in portLevelSettings`);
      else portLevelSettings[port] = settings;
    }
  }
  return { ...readPortPolicy(r, m), portLevelSettings };
}

function readPortPolicy(r: DocReader, m: Record<string, Field>): PortTrafficPolicy {
  const loadBalancer = m.loadBalancer ? readLoadBalancer(r, m.loadBalancer) : undefined;
  const connectionPool = m.connectionPool ? readConnectionPool(r, m.connectionPool) : undefined;
  const outlierDetection = m.outlierDetection ? readOutlier(r, m.outlierDetection) : undefined;
  const tls = m.tls ? readTls(r, m.tls) : undefined;
  return {
    ...(loadBalancer ? { loadBalancer } : {}),
    ...(connectionPool ? { connectionPool } : {}),
    ...(outlierDetection ? { outlierDetection } : {}),
    ...(tls ? { tls } : {}),
  };
}

function readLoadBalancer(r: DocReader, f: Field): LoadBalancerSettings | undefined {
  const m = mapWith(r, f, ['simple'], {
    consistentHash: ignore('no session affinity: requests are balanced by the other settings'),
    localityLbSetting: ignore('meshpilot does no locality-aware routing'),
    warmupDurationSecs: ignore('no slow start'),
    warmup: ignore('no slow start'),
  });
  if (!m.simple) return undefined;
  const v = r.str(m.simple);
  if (v === undefined) return undefined;
  if (!(SIMPLE_LB as readonly string[]).includes(v)) {
    r.error(m.simple.at, m.simple.path, `unknown value '${v}': one of ${SIMPLE_LB.join(', ')}`);
    return undefined;
  }
  if (v === 'PASSTHROUGH') {
    r.warn(
      m.simple.at,
      m.simple.path,
      "valid Istio value 'PASSTHROUGH', not supported by meshpilot (ignored): the default balancing is used",
    );
    return undefined;
  }
  if (v === 'UNSPECIFIED') return undefined;
  // LEAST_CONN is the deprecated name of LEAST_REQUEST.
  return { simple: v === 'LEAST_CONN' ? 'LEAST_REQUEST' : (v as LoadBalancerSettings['simple']) };
}

function readUint(r: DocReader, f: Field, min = 0): number | undefined {
  const n = r.int(f);
  if (n === undefined) return undefined;
  if (n < min || n > 0xffffffff) {
    r.error(f.at, f.path, `must be ${min === 0 ? 'zero or more' : `at least ${min}`}, got ${n}`);
    return undefined;
  }
  return n;
}

function readMs(r: DocReader, f: Field): number | undefined {
  const s = r.str(f);
  if (s === undefined) return undefined;
  const d = parseDuration(s);
  if (!d.ok) r.error(f.at, f.path, d.error);
  else if (d.value < 1) r.error(f.at, f.path, `must be at least 1ms, got ${s}`);
  else return d.value;
  return undefined;
}

function readConnectionPool(r: DocReader, f: Field): ConnectionPoolSettings {
  const m = r.map(f, ['tcp', 'http']) ?? {};
  const out: { -readonly [K in keyof ConnectionPoolSettings]: ConnectionPoolSettings[K] } = {};
  if (m.tcp) {
    const t = mapWith(r, m.tcp, ['maxConnections', 'connectTimeout'], {
      tcpKeepalive: ignore('TCP keepalive is not configured'),
      maxConnectionDuration: ignore('connections are not closed by age'),
      idleTimeout: ignore('the TCP idle timeout is not configured (connectionPool.http.idleTimeout is)'),
    });
    if (t.maxConnections) out.maxConnections = readUint(r, t.maxConnections, 1);
    if (t.connectTimeout) out.connectTimeoutMs = readMs(r, t.connectTimeout);
  }
  if (m.http) {
    const h = mapWith(r, m.http, ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'idleTimeout'], {
      h2UpgradePolicy: ignore('upstream HTTP/1.1 connections are not upgraded'),
      useClientProtocol: ignore('sidecars speak HTTP/1.1 to upstreams'),
      maxConcurrentStreams: ignore('sidecars speak HTTP/1.1 to upstreams'),
    });
    if (h.http1MaxPendingRequests) out.http1MaxPendingRequests = readUint(r, h.http1MaxPendingRequests, 1);
    if (h.http2MaxRequests) out.http2MaxRequests = readUint(r, h.http2MaxRequests, 1);
    if (h.maxRequestsPerConnection) out.maxRequestsPerConnection = readUint(r, h.maxRequestsPerConnection);
    if (h.maxRetries) out.maxRetries = readUint(r, h.maxRetries);
    if (h.idleTimeout) out.idleTimeoutMs = readMs(r, h.idleTimeout);
  }
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined));
}

function readOutlier(r: DocReader, f: Field): OutlierDetectionSettings {
  const m = mapWith(
    r,
    f,
    [
      'consecutive5xxErrors',
      'consecutiveGatewayErrors',
      'consecutiveErrors',
      'interval',
      'baseEjectionTime',
      'maxEjectionPercent',
      'minHealthPercent',
    ],
    {
      splitExternalLocalOriginErrors: ignore('local-origin failures are counted with the others'),
      consecutiveLocalOriginFailures: ignore('local-origin failures are counted with the others'),
    },
  );
  const out: { -readonly [K in keyof OutlierDetectionSettings]: OutlierDetectionSettings[K] } = {};
  if (m.consecutive5xxErrors) out.consecutive5xxErrors = readUint(r, m.consecutive5xxErrors);
  if (m.consecutiveGatewayErrors) out.consecutiveGatewayErrors = readUint(r, m.consecutiveGatewayErrors);
  // Istio's deprecated consecutiveErrors counts gateway errors (502, 503, 504), as Istio compiles it.
  else if (m.consecutiveErrors) {
    out.consecutiveGatewayErrors = readUint(r, m.consecutiveErrors);
    r.info(m.consecutiveErrors.at, m.consecutiveErrors.path, 'deprecated in Istio: applied as consecutiveGatewayErrors, as Istio does');
  }
  if (m.interval) out.intervalMs = readMs(r, m.interval);
  if (m.baseEjectionTime) out.baseEjectionTimeMs = readMs(r, m.baseEjectionTime);
  for (const key of ['maxEjectionPercent', 'minHealthPercent'] as const) {
    const field = m[key];
    if (!field) continue;
    const n = r.int(field);
    if (n !== undefined && (n < 0 || n > 100)) r.error(field.at, field.path, `must be a percentage (0 to 100), got ${n}`);
    else if (n !== undefined) out[key] = n;
  }
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined));
}

function readTls(r: DocReader, f: Field): ClientTls | undefined {
  const m = mapWith(r, f, ['mode', 'clientCertificate', 'privateKey', 'caCertificates', 'subjectAltNames', 'sni', 'insecureSkipVerify'], {
    credentialName: refuse('certificates come from files: set clientCertificate, privateKey and caCertificates'),
    caCrl: refuse('no CRL for upstream certificates outside the mesh'),
  });
  let mode: ClientTlsMode | undefined;
  if (!m.mode)
    mode = 'DISABLE'; // Istio's default for an absent mode
  else {
    const v = r.str(m.mode);
    if (v !== undefined && (TLS_MODES as readonly string[]).includes(v)) mode = v as ClientTlsMode;
    else if (v !== undefined) r.error(m.mode.at, m.mode.path, `unknown TLS mode '${v}': one of ${TLS_MODES.join(', ')}`);
  }
  if (mode === undefined) return undefined;
  const file = (key: 'clientCertificate' | 'privateKey' | 'caCertificates'): string | undefined => {
    const field = m[key];
    if (!field) return undefined;
    const s = r.nonEmptyStr(field);
    if (s === undefined) return undefined;
    if (mode === 'DISABLE' || mode === 'ISTIO_MUTUAL') {
      r.error(field.at, field.path, `not used with mode ${mode}: certificates are for SIMPLE and MUTUAL`);
      return undefined;
    }
    // Relative to the config file, like MeshConfig's caPluginDir; Envoy reads the file itself.
    return isAbsolute(s) ? s : resolve(dirname(r.file), s);
  };
  const clientCertificate = file('clientCertificate');
  const privateKey = file('privateKey');
  const caCertificates = file('caCertificates');
  if (mode === 'MUTUAL' && (!clientCertificate || !privateKey))
    r.error(f.at, f.path, 'mode MUTUAL needs clientCertificate and privateKey (files)');
  if (mode === 'SIMPLE' && (clientCertificate || privateKey))
    r.error(f.at, f.path, 'mode SIMPLE presents no client certificate: use MUTUAL, or remove clientCertificate and privateKey');
  const sni = m.sni ? r.nonEmptyStr(m.sni) : undefined;
  const subjectAltNames = m.subjectAltNames ? r.strList(m.subjectAltNames).map((e) => e.value) : [];
  const insecureSkipVerify = m.insecureSkipVerify ? (r.bool(m.insecureSkipVerify) ?? false) : false;
  for (const [key, set] of [
    ['sni', sni !== undefined],
    ['subjectAltNames', subjectAltNames.length > 0],
    ['insecureSkipVerify', insecureSkipVerify],
  ] as const)
    if (set && (mode === 'DISABLE' || mode === 'ISTIO_MUTUAL'))
      r.error(
        m[key]!.at,
        m[key]!.path,
        `not used with mode ${mode}: ${mode === 'ISTIO_MUTUAL' ? 'mesh identities are checked by secure naming' : 'no TLS'}`,
      );
  if (insecureSkipVerify && caCertificates)
    r.error(m.insecureSkipVerify!.at, m.insecureSkipVerify!.path, 'insecureSkipVerify and caCertificates contradict each other');
  return {
    mode,
    ...(clientCertificate ? { clientCertificate } : {}),
    ...(privateKey ? { privateKey } : {}),
    ...(caCertificates ? { caCertificates } : {}),
    ...(sni ? { sni } : {}),
    subjectAltNames,
    insecureSkipVerify,
  };
}
