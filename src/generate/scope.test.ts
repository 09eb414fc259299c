import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseConfigText } from '../config/index.js';
import { mustTrustDomain } from '../identity/index.js';
import { TypeUrl } from '../proto/index.js';
import { GENERATORS, NO_POLICY, PushContext, ResourceMemo } from './index.js';

const photo = readFileSync(fileURLToPath(new URL('../../../examples/photo-app/mesh.yaml', import.meta.url)), 'utf8');
const sidecar = (ns: string, spec: string) =>
  `\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: { name: s, namespace: ${ns} }\nspec:\n${spec}`;

function setup(extra: string) {
  const r = parseConfigText(photo + extra, 'mesh.yaml');
  assert.ok(r.model, JSON.stringify(r.diagnostics));
  const model = r.model;
  const ctx = new PushContext(
    {
      model,
      trustDomain: mustTrustDomain('cluster.local'),
      trustBundlePem: 'R',
      crlPem: '',
      svidFor: () => ({ chainPem: 'C', keyPem: 'K' }),
      inboundPolicy: () => NO_POLICY,
    },
    new ResourceMemo(),
  );
  const names = (ns: string, name: string, type: TypeUrl) => {
    const w = model.workload(ns, name)!;
    const view = { nodeId: name, workloadKey: `${ns}/${name}`, workload: w, source: {}, serveKeys: true, capture: false };
    const g = GENERATORS.find((x) => x.typeUrl === type)!;
    return g.generate(view, ctx, new ResourceMemo());
  };
  return { ctx, model, names };
}

const DATASTORE = 'outbound|9080||datastore.datastore-ns.svc.cluster.local';
const BACKEND = 'outbound|9080||photo-backend.photo-ns.svc.cluster.local';

describe('Sidecar scope', () => {
  it('a root-namespace default with ./* scopes every proxy to its own namespace (Istio: . is the proxy’s namespace)', () => {
    const { names } = setup(sidecar('istio-system', '  egress:\n    - hosts: ["./*"]\n'));
    const front = [...names('photo-ns', 'photo-frontend', TypeUrl.Cluster).resources.keys()];
    assert.ok(front.includes(BACKEND) && !front.includes(DATASTORE), front.join(', '));
    const store = [...names('datastore-ns', 'datastore', TypeUrl.Cluster).resources.keys()];
    assert.ok(store.includes(DATASTORE) && !store.includes(BACKEND), store.join(', '));
  });

  it('a namespace Sidecar overrides the root default; a selector Sidecar overrides both', () => {
    const { model } = setup(
      sidecar('istio-system', '  egress:\n    - hosts: ["./*"]\n') +
        sidecar('photo-ns', '  egress:\n    - hosts: ["*/*"]\n').replace('name: s,', 'name: ns-default,') +
        sidecar('photo-ns', '  workloadSelector: { labels: { app: photo-frontend } }\n  egress:\n    - hosts: ["~/*"]\n').replace(
          'name: s,',
          'name: frontend,',
        ),
    );
    assert.equal(model.sidecarFor(model.workload('photo-ns', 'photo-frontend')!)?.name, 'frontend');
    assert.equal(model.sidecarFor(model.workload('photo-ns', 'photo-backend')!)?.name, 'ns-default');
    assert.equal(model.sidecarFor(model.workload('datastore-ns', 'datastore')!)?.namespace, 'istio-system');
  });

  it('builds one set per scope, not per proxy: two proxies of one scope share the same objects', () => {
    const { names, ctx, model } = setup(sidecar('photo-ns', '  egress:\n    - hosts: ["./*", "istio-system/*"]\n'));
    const a = names('photo-ns', 'photo-frontend', TypeUrl.ClusterLoadAssignment);
    const b = names('photo-ns', 'photo-backend', TypeUrl.ClusterLoadAssignment);
    assert.equal(a, b, 'the same endpoint set object');
    assert.equal(ctx.scopeFor(model.workload('photo-ns', 'photo-frontend')!), ctx.scopeFor(model.workload('photo-ns', 'photo-backend')!));
    assert.deepEqual([...a.resources.keys()].sort(), [
      'outbound|9080||photo-backend.photo-ns.svc.cluster.local',
      'outbound|9080||photo-frontend.photo-ns.svc.cluster.local',
    ]);
    // A proxy without a Sidecar still gets the mesh-wide set.
    assert.ok(names('datastore-ns', 'datastore', TypeUrl.ClusterLoadAssignment).resources.has(BACKEND));
  });

  it('~/* gives a proxy no outbound services at all; a Sidecar’s outboundTrafficPolicy overrides the mesh’s', () => {
    const { names, ctx, model } = setup(
      sidecar('photo-ns', '  egress:\n    - hosts: ["~/*"]\n  outboundTrafficPolicy: { mode: REGISTRY_ONLY }\n'),
    );
    assert.equal(names('photo-ns', 'photo-frontend', TypeUrl.ClusterLoadAssignment).resources.size, 0);
    assert.equal(ctx.scopeFor(model.workload('photo-ns', 'photo-frontend')!).mode, 'REGISTRY_ONLY');
    assert.equal(ctx.scopeFor(model.workload('datastore-ns', 'datastore')!).mode, 'ALLOW_ANY');
  });
});
