// The push context: everything one push needs, fixed for that push, and the resources
// that do not depend on the proxy (a service's cluster, its endpoints, a namespace's
// routes, the trust bundle) built once for the whole mesh and shared by every proxy.
// Across pushes a memo keyed by what each resource is made of keeps the very same
// EncodedResource while its inputs are unchanged, so it is never encoded twice.
import { workloadId, type TrustDomain } from '../identity/index.js';
import { shortHash } from '../lib/index.js';
import {
  destinationRuleFor,
  entryPortKind,
  hostMatchRank,
  qualifyHost,
  selectorMatches,
  type DestinationSubset,
  entryServicePort,
  TLS_MODE_LABEL,
  workloadPortFor,
  type DestinationRule,
  type MeshModel,
  type Service,
  type ServiceEntry,
  type ServicePort,
  type OutboundTrafficMode,
  type SidecarHost,
  type WorkloadEntry,
} from '../model/index.js';
import { TypeUrl } from '../proto/index.js';
import { resourceSet, type EncodedResource, type ResourceSet } from '../snapshot/index.js';
import {
  blackHoleCluster,
  captureInboundCluster,
  passthroughCluster,
  virtualOutboundListener,
  type OutboundChainSpec,
} from './capture-resources.js';
import { captureRouteName, outboundCluster, serviceHost, subsetCluster } from './names.js';
import { policyForPort } from './traffic-policy.js';
import {
  allowedServerIds,
  endpointsFor,
  hostDomains,
  outboundClusterFor,
  outboundRoutes,
  portKind,
  rootCaSecret,
  type ForeignTrustBundle,
  sourceVariant,
  speaksHttp2,
  type EndpointSpec,
  type InboundPolicy,
  type OutboundClusterSpec,
  type SecretSource,
  type VirtualHostSpec,
  type WorkloadSvid,
} from './resources.js';

/** What a push is computed from: the model, trust material, certificates and policy, as they are at that push. */
export interface PushInputs {
  readonly model: MeshModel;
  readonly trustDomain: TrustDomain;
  /** The trust bundle (all roots), PEM. */
  readonly trustBundlePem: string;
  /** Every current CRL, PEM, concatenated; empty when there is none. */
  readonly crlPem: string;
  /** The bundles of federated trust domains (absent or empty: this trust domain only). */
  readonly foreignBundles?: readonly ForeignTrustBundle[];
  /** A workload's current SVID, by workload key (`ns/name`); reading never issues one. */
  svidFor(workloadKey: string): WorkloadSvid | undefined;
  /** The inbound policy of a workload port. */
  inboundPolicy(workload: WorkloadEntry, port: ServicePort, protocol: 'http' | 'tcp'): InboundPolicy;
}

/** One HTTP or TCP port of a Service that has backends, or of one host of a ServiceEntry: what clients get for it. */
export interface MeshServicePort {
  /** The Service, for a Service's port. */
  readonly service?: Service;
  /** The ServiceEntry, for one of its hosts' ports. */
  readonly entry?: ServiceEntry;
  readonly namespace: string;
  readonly port: ServicePort;
  readonly host: string;
  readonly cluster: string;
  readonly kind: 'http' | 'tcp';
  /** The virtual IPs capture mode reaches it at: a Service's VIP, a ServiceEntry's addresses (or its assigned VIP). */
  readonly vips: readonly string[];
  /** Whether loopback mode can reach it (not a resolution NONE entry: that forwards to where the app connected, its own sidecar). */
  readonly loopback: boolean;
}

/**
 * What a proxy receives outbound config for: every service port of the mesh (no Sidecar), or the
 * ports of the services its Sidecar's egress hosts name. Proxies with equal scopes share one set
 * of clusters, endpoints, routes and outbound listener (memoized per scope, not per proxy).
 */
export interface ProxyScope {
  /** Equal keys, equal scopes: `*` for the whole mesh, else the egress hosts with `.` resolved. */
  readonly key: string;
  /** What captured traffic to an unknown destination does: the Sidecar's outboundTrafficPolicy, else the MeshConfig's. */
  readonly mode: OutboundTrafficMode;
  visible(sp: MeshServicePort): boolean;
}

// Istio's egress host match: the namespace part is `*`, the service's namespace (`.` resolved to the
// Sidecar's), or `~` (nothing); the host part `*`, `*.<suffix>`, or the service's host name.
function hostMatches(h: SidecarHost, sp: MeshServicePort): boolean {
  if (h.namespace === '~' || (h.namespace !== '*' && h.namespace !== sp.namespace)) return false;
  if (h.host === '*') return true;
  if (h.host.startsWith('*.')) return sp.host.endsWith(h.host.slice(1));
  return sp.host === h.host;
}

/**
 * Keeps built resources across pushes, keyed by a resource key and the key of its inputs:
 * a hit returns the same object (encoded at most once). Entries not used for two sweeps go.
 */
export class ResourceMemo {
  #entries = new Map<string, { inputs: string; value: unknown; used: number }>();
  #generation = 0;

  /** The memoized value for `key` if its inputs are unchanged, else a new one from `build`. */
  get<T>(key: string, inputs: string, build: () => T): T {
    const e = this.#entries.get(key);
    if (e && e.inputs === inputs) {
      e.used = this.#generation;
      return e.value as T;
    }
    const value = build();
    this.#entries.set(key, { inputs, value, used: this.#generation });
    return value;
  }

  /** Ends a generation: drops what was not used in this one or the previous one. */
  sweep(): void {
    for (const [k, e] of this.#entries) if (e.used < this.#generation - 1) this.#entries.delete(k);
    this.#generation++;
  }

  /** How many entries it holds (tests, metrics). */
  get size(): number {
    return this.#entries.size;
  }
}

const ids = new WeakMap<EncodedResource, number>();
let nextId = 0;
const idOf = (r: EncodedResource): number => {
  let id = ids.get(r);
  if (id === undefined) ids.set(r, (id = ++nextId));
  return id;
};

/** A memoized set over exactly these resource objects: the same set object while they are unchanged, so responses built for it are reused too. */
export function memoSet(memo: ResourceMemo, key: string, typeUrl: TypeUrl, resources: readonly EncodedResource[]): ResourceSet {
  return memo.get(`set:${key}`, resources.map(idOf).join(','), () => {
    const s = resourceSet(typeUrl, resources);
    if (!s.ok) throw new Error(`generator bug: ${s.error}`);
    return s.value;
  });
}

const policyKeys = new WeakMap<InboundPolicy, string>();

/** A content key of a compiled inbound policy (the policy source returns the same object for a port until the model changes). */
export function policyKey(p: InboundPolicy): string {
  let k = policyKeys.get(p);
  if (k === undefined) {
    const parts: (string | Uint8Array)[] = [p.mtlsMode, JSON.stringify(p.hcmOptions)];
    for (const f of [...p.httpFilters, ...p.networkFilters]) parts.push(`|${f.name}|${f.typedConfig.typeUrl}|`, f.typedConfig.value);
    policyKeys.set(p, (k = shortHash(...parts)));
  }
  return k;
}

/** Everything one push reads, fixed for that push; mesh-wide resources are computed on first use and shared. */
export class PushContext {
  #ports?: readonly MeshServicePort[];
  #endpoints?: ResourceSet;
  readonly #routes = new Map<string, ResourceSet>();
  readonly #clusters = new Map<string, readonly EncodedResource[]>();
  #rootCa?: EncodedResource;
  #egress?: readonly EncodedResource[];
  readonly #captureRoutes = new Map<string, ResourceSet>();
  readonly #scopes = new Map<string, ProxyScope>();
  readonly #scopedPorts = new Map<string, readonly MeshServicePort[]>();
  readonly #scopedEndpoints = new Map<string, ResourceSet>();
  readonly #virtualOutbounds = new Map<string, EncodedResource>();

  constructor(
    readonly inputs: PushInputs,
    readonly memo: ResourceMemo,
  ) {}

  get model(): MeshModel {
    return this.inputs.model;
  }

  /** Every service port with at least one backend, in model order, then every ServiceEntry host's ports. */
  servicePorts(): readonly MeshServicePort[] {
    if (this.#ports) return this.#ports;
    const domain = this.model.settings.domainSuffix;
    const out: MeshServicePort[] = [];
    for (const service of this.model.services) {
      if (this.model.workloadsOf(service).length === 0) continue;
      const host = serviceHost(service, domain);
      for (const port of service.ports)
        out.push({
          service,
          namespace: service.namespace,
          port,
          host,
          cluster: outboundCluster(port.port, host),
          kind: portKind(port),
          vips: service.vip !== undefined ? [service.vip] : [],
          loopback: true,
        });
    }
    for (const entry of this.model.serviceEntries)
      for (const host of entry.hosts)
        for (const p of entry.ports)
          out.push({
            entry,
            namespace: entry.namespace,
            port: entryServicePort(p),
            host,
            cluster: outboundCluster(p.number, host),
            kind: entryPortKind(p),
            vips: entry.addresses.length > 0 ? entry.addresses : entry.vip !== undefined ? [entry.vip] : [],
            loopback: entry.resolution !== 'NONE',
          });
    return (this.#ports = out);
  }

  /** The scope of a workload's proxy, from the Sidecar that applies to it (the same object for equal scopes in one push). */
  scopeFor(w: WorkloadEntry): ProxyScope {
    const sidecar = this.model.sidecarFor(w);
    const mode = sidecar?.outboundTrafficPolicy ?? this.model.settings.outboundTrafficPolicy;
    // `.` is the proxy's namespace, also under the root namespace's default (Istio's "same namespace").
    const hosts = (sidecar?.egressHosts ?? [{ namespace: '*', host: '*' }]).map((h) => ({
      namespace: h.namespace === '.' ? w.namespace : h.namespace,
      host: h.host,
    }));
    const all = hosts.some((h) => h.namespace === '*' && h.host === '*');
    const key = all ? '*' : [...new Set(hosts.map((h) => `${h.namespace}/${h.host}`))].sort().join(',');
    const cacheKey = `${key}|${mode}`;
    let scope = this.#scopes.get(cacheKey);
    if (!scope) {
      scope = { key, mode, visible: all ? () => true : (sp) => hosts.some((h) => hostMatches(h, sp)) };
      this.#scopes.set(cacheKey, scope);
    }
    return scope;
  }

  /** The service ports a scope sees, in model order. */
  scopedPorts(scope: ProxyScope): readonly MeshServicePort[] {
    if (scope.key === '*') return this.servicePorts();
    let ports = this.#scopedPorts.get(scope.key);
    if (!ports) this.#scopedPorts.set(scope.key, (ports = this.servicePorts().filter((sp) => scope.visible(sp))));
    return ports;
  }

  /** Istio's auto mTLS: a client uses mTLS toward a workload that runs a sidecar and has not disabled mTLS on that port. */
  speaksMtls(w: WorkloadEntry, port: ServicePort): boolean {
    return w.sidecar && this.inputs.inboundPolicy(w, port, portKind(port)).mtlsMode !== 'DISABLE';
  }

  /** The `ROOTCA` secret: trust bundle and CRL. */
  rootCa(): EncodedResource {
    const { trustBundlePem, crlPem, trustDomain } = this.inputs;
    const foreign = this.inputs.foreignBundles ?? [];
    const key = shortHash(trustBundlePem, '\n--\n', crlPem, ...foreign.flatMap((f) => ['\n--\n', f.trustDomain, f.pem]));
    return (this.#rootCa ??= this.memo.get('sds:ROOTCA', key, () => rootCaSecret(trustBundlePem, crlPem, trustDomain, foreign)));
  }

  /** The endpoints of a service port (a Service's workloads, or a ServiceEntry's endpoints or selected workloads), each with its labels. */
  backendsOf(sp: MeshServicePort): readonly (EndpointSpec & { readonly labels: Readonly<Record<string, string>> })[] {
    const fromWorkloads = (ws: readonly WorkloadEntry[]) =>
      ws.map((w) => ({
        address: w.address,
        // A sidecar answers on the service port; a workload without one is reached at its own port.
        port: w.sidecar ? sp.port.port : workloadPortFor(sp.port, w),
        mtls: this.speaksMtls(w, sp.port),
        labels: w.labels,
      }));
    if (sp.service) return fromWorkloads(this.model.workloadsOf(sp.service));
    const e = sp.entry!;
    if (e.workloadSelector) return fromWorkloads(this.model.workloadsOfEntry(e));
    return e.endpoints.map((ep) => ({
      address: ep.address,
      port: (sp.port.name !== undefined ? ep.ports[sp.port.name] : undefined) ?? sp.port.targetPort,
      // Only inside the mesh does an endpoint labelled as running a sidecar get mTLS automatically.
      mtls: e.location === 'MESH_INTERNAL' && ep.labels[TLS_MODE_LABEL] === 'istio',
      labels: ep.labels,
    }));
  }

  /** The SANs a service port's servers may present: its service accounts' SPIFFE IDs, and a ServiceEntry's subjectAltNames. */
  serverIdsOf(sp: MeshServicePort): string[] {
    if (sp.service) return allowedServerIds(this.model, this.inputs.trustDomain, sp.service);
    const e = sp.entry!;
    const accounts = e.workloadSelector
      ? this.model.workloadsOfEntry(e).map((w) => w.serviceAccount.name)
      : e.endpoints.flatMap((ep) => (ep.serviceAccount ? [ep.serviceAccount] : []));
    const ids = [...new Set(accounts)].sort().flatMap((sa) => {
      const id = workloadId(this.inputs.trustDomain, e.namespace, sa);
      return id.ok ? [id.value as string] : [];
    });
    return [...new Set([...e.subjectAltNames, ...ids])];
  }

  /** The DestinationRules that select this workload by workloadSelector: they make its clusters its own. */
  #selectedRules(w: WorkloadEntry | undefined): DestinationRule[] {
    if (!w) return [];
    return this.model.destinationRules.filter(
      (r) => r.workloadSelector !== undefined && r.namespace === w.namespace && selectorMatches(r.workloadSelector, w.labels),
    );
  }

  /** The cluster spec of a service port (or of one of its subsets) as a client sees it with its DestinationRule. */
  #clusterSpec(sp: MeshServicePort, rule: DestinationRule | undefined, subset?: DestinationSubset): OutboundClusterSpec {
    const all = this.backendsOf(sp);
    const backends = subset ? all.filter((b) => selectorMatches(subset.labels, b.labels)) : all;
    const e = sp.entry;
    const dns = e && (e.resolution === 'DNS' || e.resolution === 'DNS_ROUND_ROBIN');
    const policy =
      rule?.trafficPolicy || subset?.trafficPolicy ? policyForPort(rule?.trafficPolicy, sp.port.port, subset?.trafficPolicy) : undefined;
    return {
      ...(subset ? { name: subsetCluster(sp.port.port, subset.name, sp.host) } : {}),
      port: sp.port.port,
      host: sp.host,
      serverIds: this.serverIdsOf(sp),
      mtlsBackends: backends.filter((b) => b.mtls).length,
      backends: backends.length,
      http: sp.kind === 'http',
      ...(speaksHttp2(sp.port) ? { http2: true } : {}),
      // Istio: DNS → STRICT_DNS, DNS_ROUND_ROBIN → LOGICAL_DNS; NONE → the original destination.
      ...(e?.resolution === 'NONE' ? { discovery: 'ORIGINAL_DST' as const } : {}),
      ...(dns
        ? {
            discovery: e.resolution === 'DNS' ? ('STRICT_DNS' as const) : ('LOGICAL_DNS' as const),
            dnsEndpoints:
              backends.length > 0
                ? backends.map((b) => ({ address: b.address, port: b.port }))
                : [{ address: sp.host, port: sp.port.targetPort }],
          }
        : {}),
      ...(policy && Object.keys(policy).length > 0 ? { policy } : {}),
    };
  }

  /**
   * Every outbound cluster of the mesh for one secret source (clusters embed where their secrets
   * come from), with each host's DestinationRule and its subsets' clusters. Shared by every proxy
   * with that source, except proxies a DestinationRule selects by workloadSelector.
   */
  outboundClusters(source: SecretSource, workload?: WorkloadEntry, scope?: ProxyScope): readonly EncodedResource[] {
    const variant = sourceVariant(source);
    const selected = this.#selectedRules(workload);
    const key = `${variant}|${selected.map((r) => `${r.namespace}/${r.name}`).join(',')}`;
    const listKey = `${key}|${scope?.key ?? '*'}`;
    let list = this.#clusters.get(listKey);
    if (list) return list;
    const domain = this.model.settings.domainSuffix;
    list = (scope ? this.scopedPorts(scope) : this.servicePorts()).flatMap((sp) => {
      const rule = destinationRuleFor(this.model.destinationRules, sp.host, domain, selected.length > 0 ? workload : undefined);
      const specs = [this.#clusterSpec(sp, rule)];
      // Subset clusters over EDS only: a DNS or original-destination cluster has no labelled endpoints to filter.
      if (rule && (specs[0]!.discovery ?? 'EDS') === 'EDS')
        for (const subset of rule.subsets) specs.push(this.#clusterSpec(sp, rule, subset));
      return specs.map((spec) => {
        const name = spec.name ?? sp.cluster;
        return this.memo.get(`cds:${key}:${name}`, JSON.stringify(spec), () => outboundClusterFor(spec, source));
      });
    });
    this.#clusters.set(listKey, list);
    return list;
  }

  /**
   * The endpoints of the clusters a scope sees (its service ports and their subsets): one set per
   * scope, shared by its proxies. Cluster names end in `|<host>` and start with `outbound|<port>|`.
   */
  scopedEndpoints(scope: ProxyScope): ResourceSet {
    if (scope.key === '*') return this.endpoints();
    let set = this.#scopedEndpoints.get(scope.key);
    if (!set) {
      const visible = new Set(this.scopedPorts(scope).map((sp) => `${sp.port.port}|${sp.host}`));
      const list = [...this.endpoints().resources.values()].filter((r) => {
        const parts = r.name.split('|');
        return visible.has(`${parts[1]}|${parts[3]}`);
      });
      this.#scopedEndpoints.set(scope.key, (set = memoSet(this.memo, `eds|${scope.key}`, TypeUrl.ClusterLoadAssignment, list)));
    }
    return set;
  }

  /** Every EDS cluster's endpoints (service ports, STATIC ServiceEntries, DestinationRule subsets): one set, the same object for every proxy. */
  endpoints(): ResourceSet {
    if (this.#endpoints) return this.#endpoints;
    const domain = this.model.settings.domainSuffix;
    const list = this.servicePorts().flatMap((sp) => {
      if (sp.entry && sp.entry.resolution !== 'STATIC') return [];
      const backends = this.backendsOf(sp);
      const eps: EndpointSpec[] = backends.map(({ address, port, mtls }) => ({ address, port, mtls }));
      const out = [this.memo.get(`eds:${sp.cluster}`, JSON.stringify(eps), () => endpointsFor(sp.cluster, eps))];
      // Subsets of every rule for this host, whichever clients use them (endpoint sets are shared).
      for (const rule of this.model.destinationRules) {
        if (hostMatchRank(qualifyHost(rule.host, rule.namespace, domain), sp.host) === undefined) continue;
        for (const subset of rule.subsets) {
          const name = subsetCluster(sp.port.port, subset.name, sp.host);
          const picked: EndpointSpec[] = backends
            .filter((b) => selectorMatches(subset.labels, b.labels))
            .map(({ address, port, mtls }) => ({ address, port, mtls }));
          out.push(this.memo.get(`eds:${name}`, JSON.stringify(picked), () => endpointsFor(name, picked)));
        }
      }
      return out;
    });
    const unique = [...new Map(list.map((r) => [r.name, r])).values()];
    return (this.#endpoints = memoSet(this.memo, 'eds', TypeUrl.ClusterLoadAssignment, unique));
  }

  /** The outbound routes seen from one namespace (short names resolve within it): one set per namespace. */
  routes(namespace: string, scope?: ProxyScope): ResourceSet {
    const key = scope && scope.key !== '*' ? `${namespace}|${scope.key}` : namespace;
    const cached = this.#routes.get(key);
    if (cached) return cached;
    const domain = this.model.settings.domainSuffix;
    const vhosts: VirtualHostSpec[] = [];
    const seen = new Set<string>();
    for (const sp of scope ? this.scopedPorts(scope) : this.servicePorts()) {
      if (sp.kind !== 'http' || !sp.loopback) continue;
      const domains = domainsOf(sp, namespace, domain).filter((d) => !seen.has(d));
      domains.forEach((d) => seen.add(d));
      vhosts.push({ name: `${sp.host}:${sp.port.port}`, domains, cluster: sp.cluster });
    }
    const route = this.memo.get(`rds:${key}`, JSON.stringify(vhosts), () => outboundRoutes(vhosts));
    const set = memoSet(this.memo, `rds:${key}`, TypeUrl.RouteConfiguration, [route]);
    this.#routes.set(key, set);
    return set;
  }

  // Capture mode. A service port is reachable by VIP only when its service has one (the config
  // loader gives every service one; models built directly may not).

  /** The virtual outbound listener on 15001: the same for every captured proxy, so built once per push. */
  virtualOutbound(scope?: ProxyScope): EncodedResource {
    const mode = scope?.mode ?? this.model.settings.outboundTrafficPolicy;
    const key = `${scope?.key ?? '*'}|${mode}`;
    const cached = this.#virtualOutbounds.get(key);
    if (cached) return cached;
    const httpVips = new Map<number, string[]>();
    const chains: OutboundChainSpec[] = [];
    const tcpSeen = new Set<string>();
    for (const sp of scope ? this.scopedPorts(scope) : this.servicePorts()) {
      if (sp.vips.length === 0) continue;
      if (sp.kind === 'http') httpVips.set(sp.port.port, [...(httpVips.get(sp.port.port) ?? []), ...sp.vips]);
      else {
        // One chain per VIP and port: a ServiceEntry's second host on shared addresses gets the first one's.
        const vips = sp.vips.filter((v) => !tcpSeen.has(`${v}:${sp.port.port}`));
        vips.forEach((v) => tcpSeen.add(`${v}:${sp.port.port}`));
        if (vips.length > 0) chains.push({ kind: 'tcp', port: sp.port.port, vips, host: sp.host, cluster: sp.cluster });
      }
    }
    for (const [port, vips] of [...httpVips].sort(([a], [b]) => a - b))
      chains.push({ kind: 'http', port, vips: [...new Set(vips)].sort() });
    const listener = this.memo.get(`lds:virtualOutbound|${key}`, JSON.stringify({ chains, mode }), () =>
      virtualOutboundListener(chains, mode),
    );
    this.#virtualOutbounds.set(key, listener);
    return listener;
  }

  /** PassthroughCluster and BlackHoleCluster: where the virtual outbound listener sends destinations outside the mesh. */
  egressClusters(): readonly EncodedResource[] {
    return (this.#egress ??= [
      this.memo.get('cds:PassthroughCluster', '', passthroughCluster),
      this.memo.get('cds:BlackHoleCluster', '', blackHoleCluster),
    ]);
  }

  /** The original-destination cluster to a captured proxy's local app on `appPort`: the same for every proxy, so shared. */
  captureInboundCluster(name: string, appPort: number): EncodedResource {
    return this.memo.get(`cds:capture:${name}`, String(appPort), () => captureInboundCluster(name, appPort));
  }

  /**
   * The outbound routes of captured proxies in one namespace: one configuration per HTTP port
   * (named by the port), a virtual host per service on it, reached by name (short names within the
   * namespace) and by VIP. One set per namespace.
   */
  captureRoutes(namespace: string, scope?: ProxyScope): ResourceSet {
    const key = scope && scope.key !== '*' ? `${namespace}|${scope.key}` : namespace;
    const cached = this.#captureRoutes.get(key);
    if (cached) return cached;
    const domain = this.model.settings.domainSuffix;
    const byPort = new Map<number, VirtualHostSpec[]>();
    const seen = new Set<string>();
    for (const sp of scope ? this.scopedPorts(scope) : this.servicePorts()) {
      if (sp.kind !== 'http' || sp.vips.length === 0) continue;
      const p = sp.port.port;
      // A VIP two hosts share (a ServiceEntry's) routes to the first; Envoy refuses a domain listed twice.
      const domains = [...domainsOf(sp, namespace, domain), ...sp.vips.flatMap((v) => [`${v}:${p}`, v])].filter(
        (d) => !seen.has(`${p}|${d}`),
      );
      domains.forEach((d) => seen.add(`${p}|${d}`));
      byPort.set(p, [...(byPort.get(p) ?? []), { name: `${sp.host}:${p}`, domains, cluster: sp.cluster }]);
    }
    const routes = [...byPort]
      .sort(([a], [b]) => a - b)
      .map(([port, vhosts]) =>
        this.memo.get(`rds:capture:${key}:${port}`, JSON.stringify(vhosts), () => outboundRoutes(vhosts, captureRouteName(port))),
      );
    const set = memoSet(this.memo, `rds:capture:${key}`, TypeUrl.RouteConfiguration, routes);
    this.#captureRoutes.set(key, set);
    return set;
  }
}

/** The Host values that reach a service port from a namespace: a Service's names (short ones within its namespace), or a ServiceEntry host with and without the port. */
function domainsOf(sp: MeshServicePort, clientNamespace: string, domain: string): string[] {
  if (sp.service) return hostDomains(sp.service, sp.port, clientNamespace, domain);
  return [`${sp.host}:${sp.port.port}`, sp.host];
}
