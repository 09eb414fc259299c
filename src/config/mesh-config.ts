// Parser for the single `meshpilot.io/v1alpha1 MeshConfig`: mesh-wide settings.
import { dirname, resolve } from 'node:path';
import {
  DEFAULT_MESH_SETTINGS,
  formatDuration,
  parseDuration,
  type BundleEndpointSettings,
  type FederatedTrustDomain,
  type MeshSettings,
} from '../model/index.js';
import { isIP } from 'node:net';
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
  'bundleEndpoint',
  'federatesWith',
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
  if (m.bundleEndpoint) out.bundleEndpoint = bundleEndpoint(r, m.bundleEndpoint);
  if (m.federatesWith) out.federatesWith = federatesWith(r, m.federatesWith, out.trustDomain);
  return out;
}

const BUNDLE_ENDPOINT_FIELDS = ['address', 'port', 'refreshHint'];
const FEDERATION_FIELDS = ['trustDomain', 'bundleEndpointUrl', 'bundleEndpointProfile', 'endpointSpiffeId', 'trustBundleFile'];

function bundleEndpoint(r: DocReader, f: Field): BundleEndpointSettings | undefined {
  const m = r.map(f, BUNDLE_ENDPOINT_FIELDS);
  if (!m) return undefined;
  let address = '0.0.0.0';
  if (m.address) {
    const s = r.str(m.address);
    if (s !== undefined && !isIP(s)) r.error(m.address.at, m.address.path, `must be an IP address to listen on, got ${s}`);
    else if (s !== undefined) address = s;
  }
  if (!m.port) r.error(f.at, f.path, 'port is required (the bundle endpoint has no default port)');
  const port = m.port ? r.int(m.port) : undefined;
  if (m.port && port !== undefined && !(port > 0 && port < 65536))
    r.error(m.port.at, m.port.path, `must be a TCP port (1-65535), got ${port}`);
  const hint = m.refreshHint ? duration(r, m.refreshHint) : 300_000;
  if (m.refreshHint && hint !== undefined && hint < 1000) r.error(m.refreshHint.at, m.refreshHint.path, 'must be at least 1s');
  if (port === undefined || !(port > 0 && port < 65536) || hint === undefined || hint < 1000) return undefined;
  return { address, port, refreshHintSeconds: Math.round(hint / 1000) };
}

function federatesWith(r: DocReader, f: Field, ownTrustDomain: string): FederatedTrustDomain[] {
  const out: FederatedTrustDomain[] = [];
  for (const item of r.list(f) ?? []) {
    const m = r.map(item, FEDERATION_FIELDS);
    if (!m) continue;
    const bad = (g: Field, message: string) => {
      r.error(g.at, g.path, message);
      return undefined;
    };
    const td = m.trustDomain ? r.str(m.trustDomain) : bad(item, 'trustDomain is required');
    const tdProblem = td !== undefined ? checkTrustDomain(td) : undefined;
    if (tdProblem && m.trustDomain) bad(m.trustDomain, tdProblem);
    else if (td === ownTrustDomain && m.trustDomain) bad(m.trustDomain, `${td} is this mesh's own trust domain`);
    else if (td !== undefined && out.some((o) => o.trustDomain === td) && m.trustDomain) bad(m.trustDomain, `${td} is listed twice`);
    const file = m.trustBundleFile
      ? r.nonEmptyStr(m.trustBundleFile)
      : bad(item, 'trustBundleFile is required (the initial bundle, obtained out of band: `meshpilot ca bundle` on the other mesh)');
    let url: string | undefined;
    if (m.bundleEndpointUrl) {
      const s = r.str(m.bundleEndpointUrl);
      let u: URL | undefined;
      try {
        u = s !== undefined ? new URL(s) : undefined;
      } catch {
        bad(m.bundleEndpointUrl, `not a URL: ${s}`);
      }
      if (u && u.protocol !== 'https:') bad(m.bundleEndpointUrl, `must be an https:// URL, got ${u.protocol}`);
      else if (u) url = u.toString();
    }
    if (m.bundleEndpointProfile) {
      const p = r.str(m.bundleEndpointProfile);
      if (p !== undefined && p !== 'https_spiffe')
        bad(
          m.bundleEndpointProfile,
          `only the https_spiffe profile is supported${p === 'https_web' ? ' (https_web trusts Web PKI, which meshpilot does not)' : ''}, got ${p}`,
        );
    }
    let endpointId: string | undefined;
    if (m.endpointSpiffeId) {
      const s = r.str(m.endpointSpiffeId);
      const prefix = `spiffe://${td}/`;
      if (s !== undefined && (!s.startsWith(prefix) || s.length === prefix.length))
        bad(
          m.endpointSpiffeId,
          `must be a SPIFFE ID in ${td} (the endpoint serves that trust domain's bundle with one of its SVIDs), got ${s}`,
        );
      else endpointId = s;
    }
    if (m.bundleEndpointUrl && !m.endpointSpiffeId)
      bad(item, 'endpointSpiffeId is required with bundleEndpointUrl (https_spiffe authenticates the endpoint by its SPIFFE ID)');
    if (!m.bundleEndpointUrl && m.endpointSpiffeId)
      bad(m.endpointSpiffeId, 'endpointSpiffeId without bundleEndpointUrl: there is no endpoint to authenticate');
    if (td === undefined || tdProblem || td === ownTrustDomain || file === undefined) continue;
    if ((url === undefined) !== (endpointId === undefined)) continue;
    if (out.some((o) => o.trustDomain === td)) continue;
    out.push({
      trustDomain: td,
      trustBundleFile: resolve(dirname(r.file), file),
      ...(url ? { bundleEndpointUrl: url, endpointSpiffeId: endpointId } : {}),
    });
  }
  return out;
}
