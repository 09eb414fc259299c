// Parser for the single `meshpilot.io/v1alpha1 MeshConfig`: mesh-wide settings.
import { dirname, resolve } from 'node:path';
import { DEFAULT_MESH_SETTINGS, formatDuration, parseDuration, type MeshSettings } from '../model/index.js';
import { parseExtensionProviders } from './extension-providers.js';
import { parseIpv4Cidr } from './service-vips.js';
import { checkDns1123Label, checkDns1123Subdomain, checkTrustDomain } from './names.js';
import type { ObjectHeader } from './parse-document.js';
import type { DocReader, Field } from './yaml-reader.js';

const KNOWN = [
  'trustDomain',
  'trustDomainAliases',
  'domainSuffix',
  'rootNamespace',
  'certTtl',
  'maxCertTtl',
  'renewAtFraction',
  'renewJitterFraction',
  'caPluginDir',
  'captureMode',
  'outboundTrafficPolicy',
  'serviceCidr',
  'accessLog',
  'extensionProviders',
];

// Istio MeshConfig fields (mesh/v1alpha1/config.proto) meshpilot does not act on. One that would
// change who is trusted or how traffic is secured is refused (fail closed); the others only shape
// telemetry, routing or gateways and are ignored with a warning, so an Istio MeshConfig can be kept.
type IstioField = { readonly refuse: boolean; readonly why: string };
const refuse = (why: string): IstioField => ({ refuse: true, why });
const ignore = (why: string): IstioField => ({ refuse: false, why });
const TELEMETRY = ignore('meshpilot configures no telemetry');
const ROUTING = ignore('meshpilot does no traffic routing');
const GATEWAYS = ignore('meshpilot runs no gateways');
const ISTIO_MESH_FIELDS: Readonly<Record<string, IstioField>> = {
  caCertificates: refuse("the trust bundle comes from meshpilot's CA (caPluginDir for plug-in CA files)"),
  certificates: refuse('meshpilot issues workload certificates only'),
  ca: refuse('meshpilot is the CA (caPluginDir for plug-in CA files)'),
  meshMTLS: refuse('the TLS versions of mesh mTLS are fixed'),
  tlsDefaults: refuse('the TLS settings of mesh mTLS are fixed'),
  enableAutoMtls: refuse('auto mTLS is always on'),
  verifyCertificateAtClient: refuse('sidecars always verify peers against the mesh roots'),
  defaultProviders: TELEMETRY,
  pathNormalization: refuse("inbound paths are normalized as Istio's default, BASE with merged slashes"),
  discoverySelectors: refuse('meshpilot reads every namespace of its config'),
  trustDomainAliasesFromCertificates: refuse('trust domain aliases are listed in trustDomainAliases'),
  enableTracing: TELEMETRY,
  accessLogFile: TELEMETRY,
  accessLogFormat: TELEMETRY,
  accessLogEncoding: TELEMETRY,
  enableEnvoyAccessLogService: TELEMETRY,
  disableEnvoyListenerLog: TELEMETRY,
  enablePrometheusMerge: TELEMETRY,
  inboundClusterStatName: TELEMETRY,
  outboundClusterStatName: TELEMETRY,
  defaultConfig: ignore('proxy settings come from the bootstrap meshpilot writes'),
  inboundTrafficPolicy: ROUTING,
  localityLbSetting: ROUTING,
  h2UpgradePolicy: ROUTING,
  defaultHttpRetryPolicy: ROUTING,
  serviceSettings: ROUTING,
  serviceScopeConfigs: ROUTING,
  connectTimeout: ROUTING,
  protocolDetectionTimeout: ROUTING,
  tcpKeepalive: ROUTING,
  dnsRefreshRate: ROUTING,
  defaultServiceExportTo: ROUTING,
  defaultVirtualServiceExportTo: ROUTING,
  defaultDestinationRuleExportTo: ROUTING,
  ingressClass: GATEWAYS,
  ingressService: GATEWAYS,
  ingressControllerMode: GATEWAYS,
  ingressSelector: GATEWAYS,
  proxyListenPort: ignore('capture ports are fixed (15001, 15006)'),
  proxyInboundListenPort: ignore('capture ports are fixed (15001, 15006)'),
  proxyHttpPort: ROUTING,
  configSources: ignore('meshpilot reads its config from files'),
  thriftConfig: ROUTING,
};
const CAPTURE_MODES = ['loopback', 'iptables'] as const;
const OUTBOUND_MODES = ['ALLOW_ANY', 'REGISTRY_ONLY'] as const;

function oneOf<T extends string>(r: DocReader, f: Field, allowed: readonly T[]): T | undefined {
  const s = r.str(f);
  if (s === undefined) return undefined;
  if ((allowed as readonly string[]).includes(s)) return s as T;
  r.error(f.at, f.path, `must be one of ${allowed.join(', ')}, got ${s}`);
  return undefined;
}

function duration(r: DocReader, f: Field): number | undefined {
  const s = r.str(f, ' (write a duration such as 24h or 90m)');
  if (s === undefined) return undefined;
  const d = parseDuration(s);
  if (!d.ok) {
    r.error(f.at, f.path, d.error);
    return undefined;
  }
  if (d.value <= 0) {
    r.error(f.at, f.path, `must be positive, got ${s}`);
    return undefined;
  }
  return d.value;
}

/** Reads a MeshConfig spec into settings (defaults for absent fields); a relative caPluginDir is resolved against the file's directory. */
export function parseMeshConfig(r: DocReader, h: ObjectHeader, spec: Field | undefined): MeshSettings {
  const out: { -readonly [K in keyof MeshSettings]: MeshSettings[K] } = { ...DEFAULT_MESH_SETTINGS, origin: h.origin };
  const m = spec ? (r.map(spec, [...KNOWN, ...Object.keys(ISTIO_MESH_FIELDS)]) ?? {}) : {};
  for (const [key, f] of Object.entries(m)) {
    const istio = ISTIO_MESH_FIELDS[key];
    if (!istio) continue;
    if (istio.refuse) r.error(f.at, f.path, `valid Istio MeshConfig field '${key}', not supported by meshpilot: ${istio.why}`);
    else r.warn(f.at, f.path, `valid Istio MeshConfig field '${key}', ignored by meshpilot: ${istio.why}`);
  }
  if (m.trustDomain) {
    const td = r.str(m.trustDomain);
    const problem = td !== undefined ? checkTrustDomain(td) : undefined;
    if (problem) r.error(m.trustDomain.at, m.trustDomain.path, problem);
    else if (td !== undefined) out.trustDomain = td;
  }
  if (m.trustDomainAliases) {
    const aliases: string[] = [];
    for (const a of r.strList(m.trustDomainAliases)) {
      const problem = checkTrustDomain(a.value);
      if (problem) r.error(a.field.at, a.field.path, problem);
      else aliases.push(a.value);
    }
    out.trustDomainAliases = aliases;
  }
  if (m.domainSuffix) {
    const s = r.str(m.domainSuffix);
    const problem = s !== undefined ? checkDns1123Subdomain(s) : undefined;
    if (problem) r.error(m.domainSuffix.at, m.domainSuffix.path, problem);
    else if (s !== undefined) out.domainSuffix = s;
  }
  if (m.rootNamespace) {
    const s = r.str(m.rootNamespace);
    const problem = s !== undefined ? checkDns1123Label(s) : undefined;
    if (problem) r.error(m.rootNamespace.at, m.rootNamespace.path, problem);
    else if (s !== undefined) out.rootNamespace = s;
  }
  const ttl = m.certTtl ? duration(r, m.certTtl) : undefined;
  const maxTtl = m.maxCertTtl ? duration(r, m.maxCertTtl) : undefined;
  if (ttl !== undefined) out.certTtlMs = ttl;
  if (maxTtl !== undefined) out.maxCertTtlMs = maxTtl;
  if (out.certTtlMs > out.maxCertTtlMs) {
    const f = m.certTtl ?? m.maxCertTtl;
    if (f) r.error(f.at, f.path, `certTtl ${formatDuration(out.certTtlMs)} exceeds maxCertTtl ${formatDuration(out.maxCertTtlMs)}`);
  }
  if (m.renewAtFraction) {
    const n = r.num(m.renewAtFraction);
    if (n !== undefined && !(n > 0 && n < 1))
      r.error(m.renewAtFraction.at, m.renewAtFraction.path, `must be between 0 and 1 (exclusive), got ${n}`);
    else if (n !== undefined) out.renewAtFraction = n;
  }
  if (m.renewJitterFraction) {
    const n = r.num(m.renewJitterFraction);
    if (n !== undefined && !(n >= 0 && n < out.renewAtFraction))
      r.error(
        m.renewJitterFraction.at,
        m.renewJitterFraction.path,
        `must be at least 0 and below renewAtFraction (${out.renewAtFraction}), got ${n}`,
      );
    else if (n !== undefined) out.renewJitterFraction = n;
  }
  if (m.captureMode) out.captureMode = oneOf(r, m.captureMode, CAPTURE_MODES) ?? out.captureMode;
  if (m.outboundTrafficPolicy) {
    // Istio's shape: outboundTrafficPolicy: { mode: ALLOW_ANY | REGISTRY_ONLY }.
    const p = r.map(m.outboundTrafficPolicy, ['mode']) ?? {};
    if (p.mode) out.outboundTrafficPolicy = oneOf(r, p.mode, OUTBOUND_MODES) ?? out.outboundTrafficPolicy;
  }
  if (m.serviceCidr) {
    const s = r.str(m.serviceCidr);
    const cidr = s !== undefined ? parseIpv4Cidr(s) : undefined;
    if (cidr && !cidr.ok) r.error(m.serviceCidr.at, m.serviceCidr.path, cidr.error);
    else if (s !== undefined) out.serviceCidr = s;
  }
  if (m.accessLog) {
    const b = r.bool(m.accessLog);
    if (b !== undefined) out.accessLog = b;
  }
  if (m.extensionProviders) out.extensionProviders = parseExtensionProviders(r, m.extensionProviders);
  if (m.caPluginDir) {
    const s = r.nonEmptyStr(m.caPluginDir);
    if (s !== undefined) out.caPluginDir = resolve(dirname(r.file), s);
  }
  return out;
}
