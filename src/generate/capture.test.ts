import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseConfigText } from '../config/index.js';
import { mustTrustDomain } from '../identity/index.js';
import type { MeshModel } from '../model/index.js';
import {
  Any,
  Cluster,
  DownstreamTlsContext,
  HttpConnectionManager,
  Listener,
  RouteConfiguration,
  Router,
  TcpProxy,
  TlsInspector,
  TypeUrl,
} from '../proto/index.js';
import { snapshotOf, type EncodedResource } from '../snapshot/index.js';
import { GENERATORS, generateAll, NO_POLICY, PushContext, ResourceMemo, type InboundPolicy, type NodeView } from './index.js';

// Golden files: testdata/capture-<case>.json is the decoded capture-mode output; UPDATE_GOLDEN=1 rewrites them.
const testdata = fileURLToPath(new URL('../../../src/generate/testdata/', import.meta.url));
const example = (f: string) => readFileSync(fileURLToPath(new URL(`../../../examples/photo-app/${f}`, import.meta.url)), 'utf8');

// The photo app in capture mode: services answer on their app's own port (port == targetPort), a
// clusterIP for datastore, the other VIPs derived from serviceCidr, and a TCP service.
function captureMesh(policy: 'ALLOW_ANY' | 'REGISTRY_ONLY' = 'ALLOW_ANY'): MeshModel {
  const yaml =
    example('mesh.yaml')
      .replaceAll('targetPort: 8080', 'targetPort: 9080')
      .replace(
        'trustDomain: cluster.local',
        `trustDomain: cluster.local\n  captureMode: iptables\n  serviceCidr: 10.231.7.192/26\n  outboundTrafficPolicy: { mode: ${policy} }`,
      )
      .replace(
        /name: datastore\n {2}namespace: datastore-ns\nspec:\n/,
        'name: datastore\n  namespace: datastore-ns\nspec:\n  clusterIP: 10.231.7.200\n',
      ) +
    `
---
apiVersion: v1
kind: Service
metadata: { name: photo-db, namespace: datastore-ns }
spec:
  selector: { app: datastore }
  ports: [{ name: tcp-db, port: 5432, targetPort: 5433 }]
`;
  const r = parseConfigText(yaml, 'mesh.yaml');
  assert.ok(r.model, JSON.stringify(r.diagnostics));
  return r.model;
}

const policies: Record<string, InboundPolicy> = {
  'photo-frontend': NO_POLICY,
  'photo-backend': { ...NO_POLICY, mtlsMode: 'PERMISSIVE' },
  datastore: { ...NO_POLICY, mtlsMode: 'STRICT' },
};

function context(model: MeshModel, memo = new ResourceMemo()): PushContext {
  return new PushContext(
    {
      model,
      trustDomain: mustTrustDomain('cluster.local'),
      trustBundlePem: 'ROOT',
      crlPem: '',
      svidFor: () => ({ chainPem: 'CHAIN', keyPem: 'KEY' }),
      inboundPolicy: (w, port) => (port.port === 5432 ? { ...NO_POLICY, mtlsMode: 'DISABLE' } : (policies[w.name] ?? NO_POLICY)),
    },
    memo,
  );
}

function view(model: MeshModel, ns: string, name: string, capture = true): NodeView {
  const workload = model.workload(ns, name);
  assert.ok(workload);
  return { nodeId: `n-${name}`, workloadKey: `${ns}/${name}`, workload, source: {}, serveKeys: true, capture };
}

const CODECS: Record<string, { decode(b: Uint8Array): unknown }> = {
  'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager': HttpConnectionManager,
  'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy': TcpProxy,
  'envoy.extensions.filters.http.router.v3.Router': Router,
  'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector': TlsInspector,
  'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext': DownstreamTlsContext,
};

// Drops protobuf defaults and expands Any payloads, so the golden file shows what was set.
function readable(v: unknown): unknown {
  if (v === undefined || v === null || v === '' || v === 0 || v === false) return undefined;
  if (v instanceof Uint8Array) return v.length === 0 ? undefined : Buffer.from(v).toString('base64');
  if (Array.isArray(v)) return v.length === 0 ? undefined : v.map((x) => readable(x) ?? {});
  if (typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  if (typeof o.typeUrl === 'string' && o.value instanceof Uint8Array) {
    const type = o.typeUrl.replace('type.googleapis.com/', '');
    const codec = CODECS[type];
    return { '@type': type, ...((codec ? readable(codec.decode(o.value)) : undefined) ?? {}) };
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) {
    const r = readable(x);
    if (r !== undefined && !(typeof r === 'object' && r !== null && !Array.isArray(r) && Object.keys(r).length === 0)) out[k] = r;
  }
  return Object.keys(out).length === 0 ? undefined : out;
}

const DECODERS: Partial<Record<string, { decode(b: Uint8Array): unknown }>> = {
  [TypeUrl.Listener]: Listener,
  [TypeUrl.Cluster]: Cluster,
  [TypeUrl.RouteConfiguration]: RouteConfiguration,
};

function decoded(resources: readonly EncodedResource[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const r of resources) {
    const codec = DECODERS[r.typeUrl];
    // Outbound clusters, endpoints and secrets are the same in both modes (sidecar.test.ts covers them).
    if (!codec || r.name.startsWith('outbound|')) continue;
    out[`${r.typeUrl.split('.').pop()} ${r.name}`] = readable(codec.decode(Any.decode(r.anyBytes()).value));
  }
  return out;
}

function expectGolden(name: string, actual: unknown): void {
  const file = `${testdata}capture-${name}.json`;
  // Compared as data, so the file may be formatted by prettier after UPDATE_GOLDEN=1 rewrites it.
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, JSON.stringify(actual, null, 2) + '\n');
  assert.deepEqual(
    JSON.parse(JSON.stringify(actual)),
    JSON.parse(readFileSync(file, 'utf8')),
    `golden capture-${name}.json differs (UPDATE_GOLDEN=1 rewrites it)`,
  );
}

describe('capture mode generators', () => {
  it('emits the virtual outbound and inbound listeners, per-port routes and original-destination clusters (golden)', () => {
    const model = captureMesh();
    const ctx = context(model);
    expectGolden('photo-backend', decoded(generateAll(view(model, 'photo-ns', 'photo-backend'), ctx, new ResourceMemo())));
    // A STRICT port takes mTLS only; a DISABLE TCP port plaintext only; no TLS inspector without PERMISSIVE.
    expectGolden('datastore', decoded(generateAll(view(model, 'datastore-ns', 'datastore'), ctx, new ResourceMemo())));
  });

  it('sends destinations outside the mesh to the black hole under REGISTRY_ONLY', () => {
    const model = captureMesh('REGISTRY_ONLY');
    const out = generateAll(view(model, 'photo-ns', 'photo-frontend'), context(model), new ResourceMemo());
    const l = Listener.decode(Any.decode(out.find((r) => r.name === 'virtualOutbound')!.anyBytes()).value);
    const tcp = TcpProxy.decode(l.defaultFilterChain!.filters[0]!.typedConfig!.value);
    assert.equal(tcp.cluster, 'BlackHoleCluster');
    const allow = captureMesh('ALLOW_ANY');
    const l2 = Listener.decode(
      Any.decode(
        generateAll(view(allow, 'photo-ns', 'photo-frontend'), context(allow), new ResourceMemo())
          .find((r) => r.name === 'virtualOutbound')!
          .anyBytes(),
      ).value,
    );
    assert.equal(TcpProxy.decode(l2.defaultFilterChain!.filters[0]!.typedConfig!.value).cluster, 'PassthroughCluster');
  });

  it('builds the outbound listener, egress and inbound clusters once for the mesh, routes once per namespace', () => {
    const model = captureMesh();
    const shared = new ResourceMemo();
    const ctx = context(model, shared);
    const gen = (ns: string, name: string) => {
      const v = view(model, ns, name);
      return Object.fromEntries(GENERATORS.map((g) => [g.typeUrl, g.generate(v, ctx, new ResourceMemo())]));
    };
    const front = gen('photo-ns', 'photo-frontend');
    const back = gen('photo-ns', 'photo-backend');
    const store = gen('datastore-ns', 'datastore');
    const res = (sets: typeof front, t: TypeUrl, name: string) => sets[t]!.resources.get(name);
    const vo = res(front, TypeUrl.Listener, 'virtualOutbound');
    assert.ok(vo);
    assert.equal(res(store, TypeUrl.Listener, 'virtualOutbound'), vo, 'one virtual outbound listener for every namespace');
    assert.equal(res(back, TypeUrl.Cluster, 'inbound|9080||'), res(store, TypeUrl.Cluster, 'inbound|9080||'));
    assert.equal(res(back, TypeUrl.Cluster, 'PassthroughCluster'), res(store, TypeUrl.Cluster, 'PassthroughCluster'));
    assert.equal(front[TypeUrl.RouteConfiguration], back[TypeUrl.RouteConfiguration], 'one route set per namespace');
    assert.notEqual(front[TypeUrl.RouteConfiguration], store[TypeUrl.RouteConfiguration]);
    // The next push over an unchanged model reuses the very same objects.
    const again = context(model, shared);
    assert.equal(again.virtualOutbound(), vo);
  });

  it('gives a proxy that serves no port no virtual inbound listener, and leaves no dangling reference', () => {
    const model = parseConfigText(
      example('mesh.yaml').replace('trustDomain: cluster.local', 'trustDomain: cluster.local\n  captureMode: iptables') +
        '\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: client, namespace: photo-ns}\n---\n' +
        'apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: client, namespace: photo-ns}\n' +
        'spec: {address: 127.0.0.30, serviceAccount: client, labels: {app: client, security.istio.io/tlsMode: istio}}\n',
      'mesh.yaml',
    ).model;
    assert.ok(model);
    const ctx = context(model);
    const v = view(model, 'photo-ns', 'client');
    const sets = GENERATORS.map((g) => g.generate(v, ctx, new ResourceMemo()));
    const names = sets.flatMap((s) => [...s.resources.keys()]);
    assert.ok(names.includes('virtualOutbound') && !names.includes('virtualInbound'), names.join(', '));
    const snap = snapshotOf(sets);
    assert.ok(snap.ok);
    assert.deepEqual(snap.value.danglingReferences(), []);
    const backend = GENERATORS.map((g) => g.generate(view(model, 'photo-ns', 'photo-backend'), ctx, new ResourceMemo()));
    const snap2 = snapshotOf(backend);
    assert.ok(snap2.ok);
    assert.deepEqual(snap2.value.danglingReferences(), []);
  });

  it('keeps loopback proxies on their loopback listeners in the same push', () => {
    const model = captureMesh();
    const names = generateAll(view(model, 'photo-ns', 'photo-backend', false), context(model), new ResourceMemo()).map((r) => r.name);
    assert.ok(names.includes('outbound_http') && names.includes('inbound|9080') && !names.includes('virtualOutbound'));
  });
});
