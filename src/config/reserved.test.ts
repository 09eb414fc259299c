import assert from 'node:assert/strict';
import { parseConfigText } from './index.js';

const workload = (namespace: string, serviceAccount: string) => `apiVersion: v1
kind: ServiceAccount
metadata:
  name: ${serviceAccount}
  namespace: ${namespace}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: impostor
  namespace: ${namespace}
spec:
  address: 127.0.0.20
  serviceAccount: ${serviceAccount}
`;

describe('reserved identities in config', () => {
  it('refuses a WorkloadEntry running as the control plane service account, at spec.serviceAccount', () => {
    const r = parseConfigText(workload('istio-system', 'meshpilot'), 'mesh.yaml');
    assert.equal(r.model, undefined);
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    assert.deepEqual(
      errors.map((d) => [d.file, d.line, d.path]),
      [['mesh.yaml', 14, 'spec.serviceAccount']],
    );
    assert.match(errors[0]!.message, /istio-system\/meshpilot is reserved/);
  });

  it('follows the MeshConfig root namespace, wherever the MeshConfig is', () => {
    const meshConfig =
      '---\napiVersion: meshpilot.io/v1alpha1\nkind: MeshConfig\nmetadata:\n  name: mesh\nspec:\n  rootNamespace: mesh-root\n';
    assert.ok(parseConfigText(workload('istio-system', 'meshpilot') + meshConfig, 'a.yaml').model);
    const r = parseConfigText(workload('mesh-root', 'meshpilot') + meshConfig, 'b.yaml');
    assert.equal(r.model, undefined);
    assert.deepEqual(
      r.diagnostics.filter((d) => d.severity === 'error').map((d) => d.path),
      ['spec.serviceAccount'],
    );
  });

  it('accepts a service account named meshpilot outside the root namespace', () => {
    assert.ok(parseConfigText(workload('default', 'meshpilot'), 'c.yaml').model);
  });
});
