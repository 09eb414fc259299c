// The push context: everything one push needs, fixed for that push, and the resources
// that do not depend on the proxy (a service's cluster, its endpoints, a namespace's
// routes, the trust bundle) built once for the whole mesh and shared by every proxy.
// Across pushes a memo keyed by what each resource is made of keeps the very same
// EncodedResource while its inputs are unchanged, so it is never encoded twice.
import type { TrustDomain } from '../identity/index.js';
import { shortHash } from '../lib/index.js';
import { workloadPortFor, type MeshModel, type Service, type ServicePort, type WorkloadEntry } from '../model/index.js';
import { TypeUrl } from '../proto/index.js';
import { resourceSet, type EncodedResource, type ResourceSet } from '../snapshot/index.js';
import {
  blackHoleCluster,
  captureInboundCluster,
  passthroughCluster,
  virtualOutboundListener,
  type OutboundChainSpec,
} from './capture-resources.js';
import { captureRouteName, outboundCluster, serviceHost } from './names.js';
import {
  allowedServerIds,
  endpointsFor,
  hostDomains,
  outboundClusterFor,
  outboundRoutes,
  portKind,
  rootCaSecret,
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
  /** A workload's current SVID, by workload key (`ns/name`); reading never issues one. */
  svidFor(workloadKey: string): WorkloadSvid | undefined;
  /** The inbound policy of a workload port. */
  inboundPolicy(workload: WorkloadEntry, port: ServicePort, protocol: 'http' | 'tcp'): InboundPolicy;
}

/** One HTTP or TCP port of a service that has backends: what clients get for it. */
export interface MeshServicePort {
  readonly service: Service;
  readonly port: ServicePort;
  readonly host: string;
  readonly cluster: string;
  readonly kind: 'http' | 'tcp';
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
  #virtualOutbound?: EncodedResource;
  #egress?: readonly EncodedResource[];
  readonly #captureRoutes = new Map<string, ResourceSet>();

  constructor(
    readonly inputs: PushInputs,
    readonly memo: ResourceMemo,
  ) {}

  get model(): MeshModel {
    return this.inputs.model;
  }

  /** Every service port with at least one backend, in model order. */
  servicePorts(): readonly MeshServicePort[] {
    if (this.#ports) return this.#ports;
    const domain = this.model.settings.domainSuffix;
    const out: MeshServicePort[] = [];
    for (const service of this.model.services) {
      if (this.model.workloadsOf(service).length === 0) continue;
      const host = serviceHost(service, domain);
      for (const port of service.ports) out.push({ service, port, host, cluster: outboundCluster(port.port, host), kind: portKind(port) });
    }
    return (this.#ports = out);
  }

  /** Istio's auto mTLS: a client uses mTLS toward a workload that runs a sidecar and has not disabled mTLS on that port. */
  speaksMtls(w: WorkloadEntry, port: ServicePort): boolean {
    return w.sidecar && this.inputs.inboundPolicy(w, port, portKind(port)).mtlsMode !== 'DISABLE';
  }

  /** The `ROOTCA` secret: trust bundle and CRL. */
  rootCa(): EncodedResource {
    const { trustBundlePem, crlPem } = this.inputs;
    return (this.#rootCa ??= this.memo.get('sds:ROOTCA', shortHash(trustBundlePem, '\n--\n', crlPem), () =>
      rootCaSecret(trustBundlePem, crlPem),
    ));
  }

  /** Every outbound cluster of the mesh for one secret source (clusters embed where their secrets come from). */
  outboundClusters(source: SecretSource): readonly EncodedResource[] {
    const variant = sourceVariant(source);
    let list = this.#clusters.get(variant);
    if (list) return list;
    list = this.servicePorts().map((sp) => {
      const backends = this.model.workloadsOf(sp.service);
      const spec: OutboundClusterSpec = {
        port: sp.port.port,
        host: sp.host,
        serverIds: allowedServerIds(this.model, this.inputs.trustDomain, sp.service),
        mtlsBackends: backends.filter((w) => this.speaksMtls(w, sp.port)).length,
        backends: backends.length,
        ...(speaksHttp2(sp.port) ? { http2: true } : {}),
      };
      return this.memo.get(`cds:${variant}:${sp.cluster}`, JSON.stringify(spec), () => outboundClusterFor(spec, source));
    });
    this.#clusters.set(variant, list);
    return list;
  }

  /** Every service port's endpoints: one set, the same object for every proxy. */
  endpoints(): ResourceSet {
    if (this.#endpoints) return this.#endpoints;
    const list = this.servicePorts().map((sp) => {
      const eps: EndpointSpec[] = this.model.workloadsOf(sp.service).map((w) => ({
        address: w.address,
        // A sidecar answers on the service port; a workload without one is reached at its own port.
        port: w.sidecar ? sp.port.port : workloadPortFor(sp.port, w),
        mtls: this.speaksMtls(w, sp.port),
      }));
      return this.memo.get(`eds:${sp.cluster}`, JSON.stringify(eps), () => endpointsFor(sp.cluster, eps));
    });
    return (this.#endpoints = memoSet(this.memo, 'eds', TypeUrl.ClusterLoadAssignment, list));
  }

  /** The outbound routes seen from one namespace (short names resolve within it): one set per namespace. */
  routes(namespace: string): ResourceSet {
    const cached = this.#routes.get(namespace);
    if (cached) return cached;
    const domain = this.model.settings.domainSuffix;
    const vhosts: VirtualHostSpec[] = [];
    const seen = new Set<string>();
    for (const sp of this.servicePorts()) {
      if (sp.kind !== 'http') continue;
      const domains = hostDomains(sp.service, sp.port, namespace, domain).filter((d) => !seen.has(d));
      domains.forEach((d) => seen.add(d));
      vhosts.push({ name: `${sp.host}:${sp.port.port}`, domains, cluster: sp.cluster });
    }
    const route = this.memo.get(`rds:${namespace}`, JSON.stringify(vhosts), () => outboundRoutes(vhosts));
    const set = memoSet(this.memo, `rds:${namespace}`, TypeUrl.RouteConfiguration, [route]);
    this.#routes.set(namespace, set);
    return set;
  }

  // Capture mode. A service port is reachable by VIP only when its service has one (the config
  // loader gives every service one; models built directly may not).

  /** The virtual outbound listener on 15001: the same for every captured proxy, so built once per push. */
  virtualOutbound(): EncodedResource {
    if (this.#virtualOutbound) return this.#virtualOutbound;
    const httpVips = new Map<number, string[]>();
    const chains: OutboundChainSpec[] = [];
    for (const sp of this.servicePorts()) {
      const vip = sp.service.vip;
      if (vip === undefined) continue;
      if (sp.kind === 'tcp') chains.push({ kind: 'tcp', port: sp.port.port, vip, host: sp.host, cluster: sp.cluster });
      else httpVips.set(sp.port.port, [...(httpVips.get(sp.port.port) ?? []), vip]);
    }
    for (const [port, vips] of [...httpVips].sort(([a], [b]) => a - b))
      chains.push({ kind: 'http', port, vips: [...new Set(vips)].sort() });
    const mode = this.model.settings.outboundTrafficPolicy;
    return (this.#virtualOutbound = this.memo.get('lds:virtualOutbound', JSON.stringify({ chains, mode }), () =>
      virtualOutboundListener(chains, mode),
    ));
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
  captureRoutes(namespace: string): ResourceSet {
    const cached = this.#captureRoutes.get(namespace);
    if (cached) return cached;
    const domain = this.model.settings.domainSuffix;
    const byPort = new Map<number, VirtualHostSpec[]>();
    for (const sp of this.servicePorts()) {
      const vip = sp.service.vip;
      if (sp.kind !== 'http' || vip === undefined) continue;
      const p = sp.port.port;
      const domains = [...hostDomains(sp.service, sp.port, namespace, domain), `${vip}:${p}`, vip];
      byPort.set(p, [...(byPort.get(p) ?? []), { name: `${sp.host}:${p}`, domains, cluster: sp.cluster }]);
    }
    const routes = [...byPort]
      .sort(([a], [b]) => a - b)
      .map(([port, vhosts]) =>
        this.memo.get(`rds:capture:${namespace}:${port}`, JSON.stringify(vhosts), () => outboundRoutes(vhosts, captureRouteName(port))),
      );
    const set = memoSet(this.memo, `rds:capture:${namespace}`, TypeUrl.RouteConfiguration, routes);
    this.#captureRoutes.set(namespace, set);
    return set;
  }
}
