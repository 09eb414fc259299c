import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseConfigText } from '../config/index.js';
import { TypeUrl } from '../proto/index.js';
import { resolveOrigin } from './resource-origin.js';

describe('resource origin', () => {
  // The photo app with a second port on photo-backend, so the port's own line is told apart from the object's.
  const base = readFileSync(fileURLToPath(new URL('../../../examples/photo-app/mesh.yaml', import.meta.url)), 'utf8');
  const anchor = 'app: photo-backend\n  ports:\n';
  const text = base.replace(anchor, `${anchor}    - name: http-admin\n      port: 15001\n      targetPort: 8081\n`);
  assert.notEqual(text, base);
  const model = parseConfigText(text, 'mesh.yaml').model!;
  const lines = text.split('\n');
  const lineOf = (needle: string, after = 0) => lines.findIndex((l, i) => i >= after && l.includes(needle)) + 1;
  const backendDoc = lineOf('name: photo-backend', lineOf('kind: Service'));
  const backend = 'photo-ns/photo-backend';

  it('names the Service port behind an outbound cluster, its endpoints and an inbound listener, at the port’s line', () => {
    const at = `mesh.yaml:${lineOf('port: 15001')}`;
    const want = { kind: 'Service', namespace: 'photo-ns', name: 'photo-backend', at };
    assert.deepEqual(
      resolveOrigin(model, 'photo-ns/photo-frontend', TypeUrl.Cluster, 'outbound|15001||photo-backend.photo-ns.svc.cluster.local'),
      want,
    );
    assert.deepEqual(resolveOrigin(model, backend, TypeUrl.Listener, 'inbound|15001'), want);
    assert.deepEqual(resolveOrigin(model, backend, TypeUrl.Cluster, 'inbound|8081||'), want);
    assert.ok(backendDoc > 0);
  });

  it('names the workload for its own secret and outbound listener, and the service Envoy names in a route error', () => {
    const we = resolveOrigin(model, backend, TypeUrl.Secret, 'default');
    assert.equal(we?.kind, 'WorkloadEntry');
    assert.equal(we?.name, 'photo-backend');
    assert.match(we?.at ?? '', /^mesh\.yaml:\d+$/);
    const r = resolveOrigin(
      model,
      backend,
      TypeUrl.RouteConfiguration,
      'outbound_http',
      'duplicate domain datastore.datastore-ns.svc.cluster.local:9080',
    );
    assert.equal(r?.name, 'datastore');
  });

  it('names nothing it cannot attribute to one object', () => {
    assert.equal(resolveOrigin(model, backend, TypeUrl.Secret, 'ROOTCA'), undefined);
    assert.equal(resolveOrigin(model, backend, TypeUrl.RouteConfiguration, 'outbound_http', 'no host here'), undefined);
    assert.equal(resolveOrigin(model, backend, TypeUrl.Cluster, 'outbound|9080||gone.nowhere.svc.cluster.local'), undefined);
    assert.equal(resolveOrigin(model, 'photo-ns/unknown', TypeUrl.Listener, 'inbound|9080'), undefined);
  });
});
