// One generator per type URL. Each says which changes concern its type for a proxy, and
// builds that type's resource set from the push context: shared mesh-wide resources by
// reference, the proxy's own resources through the proxy's memo (encoded only when
// what they are made of changed).
import { portsServedBy, workloadPortFor, type ObjectKind, type PushChange, type WorkloadEntry } from '../model/index.js';
import { TypeUrl } from '../proto/index.js';
import type { EncodedResource, ResourceSet } from '../snapshot/index.js';
import { memoSet, policyKey, type PushContext, type ResourceMemo } from './context.js';
import { virtualInboundListener } from './capture-resources.js';
import { inboundCluster, inboundListener, SDS_DEFAULT } from './names.js';
import {
  defaultSecret,
  inboundListenerFor,
  outboundHttpListener,
  portKind,
  sourceVariant,
  staticCluster,
  svidElsewhere,
  tcpOutboundListener,
  type InboundChainSpec,
  type SecretSource,
} from './resources.js';

/** A proxy as generators see it: its workload in the push's model and where its secrets come from. */
export interface NodeView {
  readonly nodeId: string;
  /** `namespace/name` of the workload. */
  readonly workloadKey: string;
  readonly workload: WorkloadEntry;
  readonly source: SecretSource;
  /** Whether the proxy's own SVID and key are served over ADS (false with a node agent, or in plaintext development mode). */
  readonly serveKeys: boolean;
  /** Whether iptables capture sends the workload's traffic here: Istio's 15001/15006 listeners instead of loopback ones. */
  readonly capture: boolean;
}

/** Builds one type's resources for a proxy, and says which changes concern that type. */
export interface ResourceGenerator {
  readonly typeUrl: TypeUrl;
  /** Whether `change` can alter this type's resources for `node` (a full change always does). */
  affectedBy(change: PushChange, node: NodeView, rootNamespace: string): boolean;
  /** This type's resources for `node`; `memo` is the proxy's own, kept between its pushes. */
  generate(node: NodeView, ctx: PushContext, memo: ResourceMemo): ResourceSet;
}

/** Ports below this need privilege to bind. */
const PRIVILEGED_PORTS = 1024;

const touches = (change: PushChange, kinds: readonly ObjectKind[]) => kinds.some((k) => change.kinds.has(k));

/** The services and workloads a proxy's clusters, endpoints and routes are made of; PeerAuthentication decides auto mTLS. */
const MESH_KINDS: readonly ObjectKind[] = ['Service', 'WorkloadEntry', 'PeerAuthentication', 'ServiceEntry', 'DestinationRule', 'Sidecar'];
/** What routes and listeners are made of: the hosts and ports of Services and ServiceEntries, the workloads they select, and the Sidecars that scope them. */
const HOST_KINDS: readonly ObjectKind[] = ['Service', 'WorkloadEntry', 'ServiceEntry', 'Sidecar'];
const POLICY_KINDS: readonly ObjectKind[] = ['PeerAuthentication', 'AuthorizationPolicy', 'RequestAuthentication'];

/** SDS: the proxy's SVID (`default`) and the trust bundle with the CRL (`ROOTCA`). */
export const secretGenerator: ResourceGenerator = {
  typeUrl: TypeUrl.Secret,
  affectedBy: (change, node) => change.full || change.trust || change.svids.has(node.workloadKey),
  generate(node, ctx, memo) {
    const list: EncodedResource[] = [ctx.rootCa()];
    // With a node agent, the SVID and its private key never pass through meshpilot.
    if (node.serveKeys && !svidElsewhere(node.source)) {
      const svid = ctx.inputs.svidFor(node.workloadKey);
      if (svid) list.push(memo.get(`sds:${SDS_DEFAULT}`, svid.chainPem, () => defaultSecret(svid)));
    }
    return memoSet(memo, 'sds', TypeUrl.Secret, list);
  },
};

/** CDS: every outbound cluster of the mesh (shared) and the proxy's inbound clusters to its app. */
export const clusterGenerator: ResourceGenerator = {
  typeUrl: TypeUrl.Cluster,
  affectedBy: (change) => change.full || touches(change, MESH_KINDS),
  generate(node, ctx, memo) {
    const own: EncodedResource[] = [];
    const seen = new Set<number>();
    for (const port of portsServedBy(ctx.model, node.workload)) {
      const appPort = workloadPortFor(port, node.workload);
      if (seen.has(appPort)) continue;
      seen.add(appPort);
      const name = inboundCluster(appPort);
      own.push(
        node.capture
          ? ctx.captureInboundCluster(name, appPort)
          : memo.get(`cds:${name}`, `${node.workload.address}:${appPort}`, () => staticCluster(name, node.workload.address, appPort)),
      );
    }
    const egress = node.capture ? ctx.egressClusters() : [];
    const scope = ctx.scopeFor(node.workload);
    return memoSet(memo, 'cds', TypeUrl.Cluster, [...ctx.outboundClusters(node.source, node.workload, scope), ...egress, ...own]);
  },
};

/** EDS: the endpoints of every service port the proxy's scope sees, one set per scope. */
export const endpointGenerator: ResourceGenerator = {
  typeUrl: TypeUrl.ClusterLoadAssignment,
  affectedBy: (change) => change.full || touches(change, MESH_KINDS),
  generate: (node, ctx) => ctx.scopedEndpoints(ctx.scopeFor(node.workload)),
};

/** RDS: the outbound routes, one set per client namespace (and per mode: one configuration, or one per port when captured). */
export const routeGenerator: ResourceGenerator = {
  typeUrl: TypeUrl.RouteConfiguration,
  affectedBy: (change) => change.full || touches(change, HOST_KINDS),
  generate: (node, ctx) => {
    const scope = ctx.scopeFor(node.workload);
    return node.capture ? ctx.captureRoutes(node.workload.namespace, scope) : ctx.routes(node.workload.namespace, scope);
  },
};

/** LDS: loopback mode, the proxy's inbound listeners (with their policy), outbound HTTP and TCP listeners; capture mode, virtualOutbound (shared) and its virtualInbound. */
export const listenerGenerator: ResourceGenerator = {
  typeUrl: TypeUrl.Listener,
  affectedBy(change, node, rootNamespace) {
    if (change.full || change.jwks || touches(change, HOST_KINDS)) return true;
    // A policy applies to workloads of its own namespace, or to all from the root namespace.
    return change.objects.some(
      (o) => POLICY_KINDS.includes(o.kind) && (o.namespace === node.workload.namespace || o.namespace === rootNamespace),
    );
  },
  generate(node, ctx, memo) {
    if (node.capture) return captureListeners(node, ctx, memo);
    const w = node.workload;
    const variant = sourceVariant(node.source);
    const out: EncodedResource[] = [];
    const inboundPorts = new Set<number>();
    for (const port of portsServedBy(ctx.model, w)) {
      inboundPorts.add(port.port);
      const appPort = workloadPortFor(port, w);
      const kind = portKind(port);
      const policy = ctx.inputs.inboundPolicy(w, port, kind);
      const inputs = `${w.address}|${port.port}|${appPort}|${kind}|${policyKey(policy)}|${variant}`;
      out.push(memo.get(`lds:inbound:${port.port}`, inputs, () => inboundListenerFor(w.address, port, appPort, kind, policy, node.source)));
    }
    const outboundPorts = new Set<number>();
    for (const sp of ctx.scopedPorts(ctx.scopeFor(w))) {
      // A TCP service port is reached on the client's own address at the service port; one
      // listener per address and port, so the first service on a port takes it.
      if (sp.kind !== 'tcp' || !sp.loopback || inboundPorts.has(sp.port.port) || outboundPorts.has(sp.port.port)) continue;
      // A ServiceEntry's privileged port (HTTPS on 443, say) would need Envoy to bind below 1024, and
      // one listener Envoy cannot bind NACKs the proxy's whole LDS: skipped, as the config loader warns.
      if (sp.entry && sp.port.port < PRIVILEGED_PORTS) continue;
      outboundPorts.add(sp.port.port);
      out.push(memo.get(`lds:${sp.cluster}`, `${w.address}`, () => tcpOutboundListener(w.address, sp.port.port, sp.host, sp.cluster)));
    }
    out.push(memo.get('lds:outbound_http', w.address, () => outboundHttpListener(w.address)));
    return memoSet(memo, 'lds', TypeUrl.Listener, out);
  },
};

// Capture mode: the mesh-wide virtual outbound listener, and the proxy's own virtual inbound
// listener with a chain set per service port it serves (memoized by what those chains are made of).
function captureListeners(node: NodeView, ctx: PushContext, memo: ResourceMemo): ResourceSet {
  const w = node.workload;
  const ports: InboundChainSpec[] = [];
  const keys: string[] = [];
  for (const port of portsServedBy(ctx.model, w)) {
    const appPort = workloadPortFor(port, w);
    const kind = portKind(port);
    const policy = ctx.inputs.inboundPolicy(w, port, kind);
    ports.push({ port: port.port, cluster: inboundCluster(appPort), kind, policy, name: inboundListener(port.port) });
    keys.push(`${port.port}|${appPort}|${kind}|${policyKey(policy)}`);
  }
  const out: EncodedResource[] = [ctx.virtualOutbound(ctx.scopeFor(w))];
  const inbound = memo.get('lds:virtualInbound', `${keys.join(',')}|${sourceVariant(node.source)}`, () =>
    virtualInboundListener(ports, node.source),
  );
  if (inbound) out.push(inbound);
  return memoSet(memo, 'lds', TypeUrl.Listener, out);
}

/** Every generator, in the order xDS pushes their types (secrets and clusters before listeners). */
export const GENERATORS: readonly ResourceGenerator[] = [
  secretGenerator,
  clusterGenerator,
  endpointGenerator,
  listenerGenerator,
  routeGenerator,
];

/** Every resource of one proxy, all types at once (tests and debug views; the push path builds type by type). */
export function generateAll(node: NodeView, ctx: PushContext, memo: ResourceMemo): EncodedResource[] {
  return GENERATORS.flatMap((g) => [...g.generate(node, ctx, memo).resources.values()]);
}
