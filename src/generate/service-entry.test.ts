import assert from 'node:assert/strict';
import { parseConfigText } from '../config/index.js';
import { mustTrustDomain } from '../identity/index.js';
import { diffModels, mergeEvents, type MeshModel } from '../model/index.js';
import {
  Any,
  Cluster,
  Cluster_DiscoveryType,
  ClusterLoadAssignment,
  Listener,
  RouteConfiguration,
  TypeUrl,
  UpstreamTlsContext,
} from '../proto/index.js';
import type { EncodedResource } from '../snapshot/index.js';
import { GENERATORS, generateAll, NO_POLICY, PushContext, ResourceMemo, type NodeView } from './index.js';

const base = `
apiVersion: v1
kind: ServiceAccount
metadata: { name: client, namespace: apps }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client, namespace: apps }
spec:
  address: 127.0.0.21
  serviceAccount: client
  labels: { app: client, security.istio.io/tlsMode: istio }
`;

const entries = `
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: payments, namespace: apps }
spec:
  hosts: [payments.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
    - { number: 80, name: http, protocol: HTTP, targetPort: 8080 }
    - { number: 5432, name: tcp-db, protocol: TCP }
  endpoints:
    - address: 127.0.0.50
    - address: 127.0.0.51
      ports: { http: 9090 }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: search, namespace: apps }
spec:
  hosts: [search.example.com]
  resolution: DNS
  ports: [{ number: 443, name: https, protocol: HTTPS }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: mirror, namespace: apps }
spec:
  hosts: [mirror.example.com]
  resolution: DNS_ROUND_ROBIN
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints: [{ address: localhost, ports: { http: 8081 } }]
`;

const internal = `
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: legacy, namespace: apps }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: legacy-1, namespace: apps }
spec:
  address: 127.0.0.31
  serviceAccount: legacy
  labels: { app: legacy, security.istio.io/tlsMode: istio }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: legacy, namespace: apps }
spec:
  hosts: [legacy.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 7070, name: http, protocol: HTTP, targetPort: 8080 }]
  workloadSelector: { labels: { app: legacy } }
`;

function load(yaml: string): MeshModel {
  const r = parseConfigText(yaml, 'mesh.yaml');
  assert.ok(r.model, JSON.stringify(r.diagnostics, null, 1));
  return r.model;
}

function generate(model: MeshModel, workload = 'client', capture = false) {
  const ctx = new PushContext(
    {
      model,
      trustDomain: mustTrustDomain('cluster.local'),
      trustBundlePem: 'ROOT',
      crlPem: '',
      svidFor: () => ({ chainPem: 'CHAIN', keyPem: 'KEY' }),
      inboundPolicy: () => NO_POLICY,
    },
    new ResourceMemo(),
  );
  const w = model.workload('apps', workload)!;
  const view: NodeView = { nodeId: 'n', workloadKey: `apps/${workload}`, workload: w, source: {}, serveKeys: true, capture };
  const out = generateAll(view, ctx, new ResourceMemo());
  const get = <T>(codec: { decode(b: Uint8Array): T }, t: TypeUrl, name: string): T => {
    const found = out.find((x) => x.typeUrl === t && x.name === name);
    assert.ok(found, `${t} ${name} in ${out.map((x) => x.name).join(', ')}`);
    return decodeAny(codec, found);
  };
  return { out, get, view };
}

const at = (e: { endpoint?: { address?: { socketAddress?: { address: string; portValue?: number } } } }) =>
  `${e.endpoint!.address!.socketAddress!.address}:${e.endpoint!.address!.socketAddress!.portValue}`;

describe('ServiceEntry generation', () => {
  it('STATIC MESH_EXTERNAL: an EDS cluster per host and port named as Istio, endpoints at their ports, no TLS', () => {
    const { get } = generate(load(base + entries));
    const c = get(Cluster, TypeUrl.Cluster, 'outbound|80||payments.example.com');
    assert.equal(c.type, Cluster_DiscoveryType.EDS);
    assert.equal(c.transportSocket, undefined, 'MESH_EXTERNAL: plaintext unless a DestinationRule says so');
    assert.equal(c.transportSocketMatches.length, 0);
    const cla = get(ClusterLoadAssignment, TypeUrl.ClusterLoadAssignment, 'outbound|80||payments.example.com');
    assert.deepEqual(cla.endpoints[0]!.lbEndpoints.map(at), ['127.0.0.50:8080', '127.0.0.51:9090']);
    const db = get(ClusterLoadAssignment, TypeUrl.ClusterLoadAssignment, 'outbound|5432||payments.example.com');
    assert.deepEqual(db.endpoints[0]!.lbEndpoints.map(at), ['127.0.0.50:5432', '127.0.0.51:5432']);
  });

  it('routes the host by name (loopback mode) and gives TCP ports a listener on the client address', () => {
    const { get } = generate(load(base + entries));
    const rc = get(RouteConfiguration, TypeUrl.RouteConfiguration, 'outbound_http');
    const vh = rc.virtualHosts.find((v) => v.name === 'payments.example.com:80')!;
    assert.deepEqual(vh.domains, ['payments.example.com:80', 'payments.example.com']);
    assert.equal(vh.routes[0]!.route!.cluster, 'outbound|80||payments.example.com');
    const l = get(Listener, TypeUrl.Listener, 'outbound_tcp|5432||payments.example.com');
    assert.deepEqual(l.address!.socketAddress, { ...l.address!.socketAddress, address: '127.0.0.21', portValue: 5432 });
  });

  it('DNS resolves the host itself (STRICT_DNS), DNS_ROUND_ROBIN its endpoints (LOGICAL_DNS), IPv4 only, with no EDS', () => {
    const { get, out } = generate(load(base + entries));
    const search = get(Cluster, TypeUrl.Cluster, 'outbound|443||search.example.com');
    assert.equal(search.type, Cluster_DiscoveryType.STRICT_DNS);
    assert.deepEqual(search.loadAssignment!.endpoints[0]!.lbEndpoints.map(at), ['search.example.com:443']);
    const mirror = get(Cluster, TypeUrl.Cluster, 'outbound|80||mirror.example.com');
    assert.equal(mirror.type, Cluster_DiscoveryType.LOGICAL_DNS);
    assert.deepEqual(mirror.loadAssignment!.endpoints[0]!.lbEndpoints.map(at), ['localhost:8081']);
    assert.ok(
      !out.some((r) => r.typeUrl === TypeUrl.ClusterLoadAssignment && r.name.endsWith('example.com') && !r.name.includes('payments')),
    );
    // Port 443 would need privilege to bind on the client's address: no loopback listener (the loader warns).
    assert.ok(!out.some((r) => r.typeUrl === TypeUrl.Listener && r.name.includes('search.example.com')));
  });

  it('MESH_INTERNAL with a workloadSelector: the selected WorkloadEntries, mTLS with their identities, and an inbound listener on them', () => {
    const model = load(base + internal);
    const { get } = generate(model);
    const c = get(Cluster, TypeUrl.Cluster, 'outbound|7070||legacy.internal');
    const tls = UpstreamTlsContext.decode(c.transportSocket!.typedConfig!.value);
    const sans = tls.commonTlsContext!.combinedValidationContext!.defaultValidationContext!.matchTypedSubjectAltNames.map(
      (m) => m.matcher!.exact,
    );
    assert.deepEqual(sans, ['spiffe://cluster.local/ns/apps/sa/legacy']);
    const cla = get(ClusterLoadAssignment, TypeUrl.ClusterLoadAssignment, 'outbound|7070||legacy.internal');
    assert.deepEqual(cla.endpoints[0]!.lbEndpoints.map(at), ['127.0.0.31:7070']);
    const server = generate(model, 'legacy-1');
    const l = server.get(Listener, TypeUrl.Listener, 'inbound|7070');
    assert.equal(l.address!.socketAddress!.portValue, 7070);
    server.get(Cluster, TypeUrl.Cluster, 'inbound|8080||');
  });

  it('subjectAltNames are the SANs a MESH_INTERNAL entry’s servers must present', () => {
    const yaml =
      base +
      `
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: remote, namespace: apps }
spec:
  hosts: [remote.mesh.example]
  location: MESH_INTERNAL
  resolution: STATIC
  subjectAltNames: ['spiffe://other.example/ns/apps/sa/remote']
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.40, labels: { security.istio.io/tlsMode: istio } }]
`;
    const { get } = generate(load(yaml));
    const c = get(Cluster, TypeUrl.Cluster, 'outbound|80||remote.mesh.example');
    const tls = UpstreamTlsContext.decode(c.transportSocket!.typedConfig!.value);
    assert.deepEqual(
      tls.commonTlsContext!.combinedValidationContext!.defaultValidationContext!.matchTypedSubjectAltNames.map((m) => m.matcher!.exact),
      ['spiffe://other.example/ns/apps/sa/remote'],
    );
  });

  it('capture mode: each entry gets a VIP (its address, else one from serviceCidr), matched by virtualOutbound and routed by name', () => {
    const mesh = `
---
apiVersion: meshpilot.io/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec: { captureMode: iptables }
`;
    const yaml = base + entries.replace('location: MESH_EXTERNAL', 'location: MESH_EXTERNAL\n  addresses: [10.200.0.7]') + mesh;
    const model = load(yaml);
    const payments = model.serviceEntries.find((e) => e.name === 'payments')!;
    const search = model.serviceEntries.find((e) => e.name === 'search')!;
    assert.equal(payments.vip, '10.200.0.7');
    assert.match(search.vip ?? '', /^10\.96\./);
    const { get } = generate(model, 'client', true);
    const l = get(Listener, TypeUrl.Listener, 'virtualOutbound');
    const tcp = l.filterChains.find((c) => c.name === 'outbound|5432||payments.example.com')!;
    assert.deepEqual(
      tcp.filterChainMatch!.prefixRanges.map((r) => r.addressPrefix),
      ['10.200.0.7'],
    );
    const rc = get(RouteConfiguration, TypeUrl.RouteConfiguration, '80');
    const vh = rc.virtualHosts.find((v) => v.name === 'payments.example.com:80')!;
    assert.ok(vh.domains.includes('payments.example.com') && vh.domains.includes('10.200.0.7'), vh.domains.join(','));
  });

  it('generators: a ServiceEntry change concerns clusters, endpoints, routes and listeners; a DestinationRule change only clusters and endpoints', () => {
    const before = load(base);
    const withEntry = load(base + entries);
    const withRule = load(
      base +
        entries +
        `
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: payments, namespace: apps }
spec:
  host: payments.example.com
  trafficPolicy: { tls: { mode: SIMPLE } }
`,
    );
    const { view } = generate(withEntry);
    const affected = (prev: MeshModel, next: MeshModel) =>
      GENERATORS.filter((g) => g.affectedBy(mergeEvents([{ kind: 'config', changes: diffModels(prev, next) }]), view, 'istio-system'))
        .map((g) => g.typeUrl.split('.').pop())
        .sort();
    assert.deepEqual(affected(before, withEntry), ['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration']);
    assert.deepEqual(affected(withEntry, withRule), ['Cluster', 'ClusterLoadAssignment']);
  });
});

/** Decodes a resource's payload (the value of its google.protobuf.Any) with its generated codec. */
function decodeAny<T>(codec: { decode(b: Uint8Array): T }, r: EncodedResource): T {
  return codec.decode(Any.decode(r.anyBytes()).value);
}
