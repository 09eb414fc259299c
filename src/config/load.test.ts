import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { positionOf, TLS_MODE_LABEL, type MeshModel } from '../model/index.js';
import { loadConfig, parseConfigFiles, parseConfigText } from './index.js';

const examples = fileURLToPath(new URL('../../../examples/photo-app/', import.meta.url));

describe('photo-app example', () => {
  let model: MeshModel;
  before(async () => {
    const r = await loadConfig([join(examples, 'mesh.yaml'), join(examples, 'policy.yaml')]);
    assert.deepEqual(r.diagnostics, []);
    assert.ok(r.model);
    model = r.model;
  });

  it('loads clean from the directory too, to the same version as its files named one by one', async () => {
    const r = await loadConfig([examples]);
    assert.deepEqual(r.diagnostics, []);
    const files = await loadConfig(['mesh.yaml', 'policy.yaml', 'vm.yaml'].map((f) => join(examples, f)));
    assert.equal(r.model?.version, files.model?.version);
    assert.deepEqual(
      r.files.map((f) => f.slice(examples.length)),
      ['mesh.yaml', 'policy.yaml', 'vm.yaml'],
    );
  });

  it('has the reference scenario workloads and identities', () => {
    assert.equal(model.settings.trustDomain, 'cluster.local');
    assert.equal(model.settings.rootNamespace, 'istio-system');
    const addresses = Object.fromEntries(model.workloads.map((w) => [w.name, w.address]));
    assert.deepEqual(addresses, { datastore: '127.0.0.13', 'photo-backend': '127.0.0.12', 'photo-frontend': '127.0.0.11' });
    assert.ok(model.workloads.every((w) => w.sidecar && w.labels[TLS_MODE_LABEL] === 'istio'));
    assert.deepEqual(model.serviceAccountsOf({ namespace: 'datastore-ns', name: 'datastore' }), [
      { namespace: 'datastore-ns', name: 'datastore' },
    ]);
    assert.deepEqual(
      model.workloadsOf({ namespace: 'photo-ns', name: 'photo-backend' }).map((w) => w.serviceAccount),
      [{ namespace: 'photo-ns', name: 'photo-backend' }],
    );
    assert.deepEqual(model.service('datastore-ns', 'datastore')?.ports, [
      { name: 'http', port: 9080, targetPort: 8080, protocol: 'TCP', appProtocol: 'http' },
    ]);
  });

  it('allows frontend → backend and backend → datastore only', () => {
    const datastore = model.workload('datastore-ns', 'datastore');
    assert.ok(datastore);
    assert.deepEqual(
      model.peerAuthenticationsFor(datastore).map((p) => [p.namespace, p.mtlsMode]),
      [['istio-system', 'STRICT']],
    );
    const [policy] = model.authorizationPoliciesFor(datastore);
    assert.equal(policy?.action, 'ALLOW');
    assert.deepEqual(policy?.rules[0]?.from[0]?.source.principals, ['cluster.local/ns/photo-ns/sa/photo-backend']);
    const where = positionOf(policy?.origin, 'spec.rules[0].from[0].source.principals[0]');
    assert.ok(where?.file.endsWith('policy.yaml'));
    assert.equal(where?.line, 41);
  });
});

describe('parseConfigText', () => {
  it('fills defaults, accepts v1beta1, anchors and every supported field', () => {
    const text = `
apiVersion: v1
kind: ServiceAccount
metadata: {name: api}
---
apiVersion: networking.istio.io/v1beta1
kind: WorkloadEntry
metadata:
  name: api-1
  annotations: {example.com/owner: team-a}
spec:
  address: "2001:db8::1"
  serviceAccount: api
  labels: {app: api}
  ports: {grpc: 9090}
---
apiVersion: v1
kind: Service
metadata: {name: api, labels: &labels {app: api}}
spec:
  type: ClusterIP
  selector: *labels
  ports: [{name: grpc, port: 80, targetPort: 9000, protocol: TCP, appProtocol: grpc}]
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  mtls: {mode: PERMISSIVE}
  portLevelMtls: {9090: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin}
spec:
  action: DENY
  rules:
    - to: [{operation: {paths: [/admin/*], methods: [POST], notPorts: ['9090']}}]
      when: [{key: 'request.auth.claims[iss]', notValues: ['https://issuer.example.com']}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt}
spec:
  jwtRules:
    - issuer: https://issuer.example.com
      jwks: '{"keys": [{"kty": "EC"}]}'
      outputClaimToHeaders: [{header: x-sub, claim: sub}]
      fromCookies: [session]
---
apiVersion: meshpilot.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  trustDomain: example.org
  trustDomainAliases: [old.example.org]
  domainSuffix: example.internal
  rootNamespace: mesh-root
  certTtl: 1h
  maxCertTtl: 48h
  renewAtFraction: 0.6
  renewJitterFraction: 0.2
  caPluginDir: ca
  captureMode: iptables
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  serviceCidr: 10.231.7.192/26
  accessLog: true
  bundleEndpoint: {address: 127.0.0.1, port: 8443, refreshHint: 2m}
  federatesWith:
    - trustDomain: b.example
      bundleEndpointUrl: https://mesh-b.example:8443
      bundleEndpointProfile: https_spiffe
      endpointSpiffeId: spiffe://b.example/ns/istio-system/sa/meshpilot
      trustBundleFile: bundles/b.json
    - {trustDomain: c.example, trustBundleFile: /etc/meshpilot/c-roots.pem}
`;
    const r = parseConfigText(text, '/etc/meshpilot/mesh.yaml');
    assert.deepEqual(r.diagnostics, []);
    const m = r.model;
    assert.ok(m);
    const w = m.workload('default', 'api-1');
    assert.equal(w?.address, '2001:db8::1');
    assert.equal(w?.sidecar, false);
    assert.deepEqual(w?.ports, { grpc: 9090 });
    assert.deepEqual(m.service('default', 'api')?.selector, { app: 'api' });
    assert.deepEqual(m.service('default', 'api')?.labels, { app: 'api' });
    assert.deepEqual(m.peerAuthentications[0]?.portLevelMtls, { 9090: 'STRICT' });
    assert.equal(m.peerAuthentications[0]?.mtlsMode, 'PERMISSIVE');
    const deny = m.authorizationPolicies[0];
    assert.equal(deny?.action, 'DENY');
    assert.deepEqual(deny?.rules[0]?.to[0]?.operation.notPorts, ['9090']);
    assert.deepEqual(deny?.rules[0]?.when, [{ key: 'request.auth.claims[iss]', values: [], notValues: ['https://issuer.example.com'] }]);
    const jwt = m.requestAuthentications[0]?.jwtRules[0];
    assert.deepEqual(jwt?.outputClaimToHeaders, [{ header: 'x-sub', claim: 'sub' }]);
    assert.equal(jwt?.forwardOriginalToken, false);
    assert.deepEqual(
      { ...m.settings, origin: undefined },
      {
        trustDomain: 'example.org',
        trustDomainAliases: ['old.example.org'],
        domainSuffix: 'example.internal',
        extensionProviders: [],
        rootNamespace: 'mesh-root',
        certTtlMs: 3_600_000,
        maxCertTtlMs: 48 * 3_600_000,
        renewAtFraction: 0.6,
        renewJitterFraction: 0.2,
        caPluginDir: '/etc/meshpilot/ca',
        captureMode: 'iptables',
        outboundTrafficPolicy: 'REGISTRY_ONLY',
        serviceCidr: '10.231.7.192/26',
        accessLog: true,
        bundleEndpoint: { address: '127.0.0.1', port: 8443, refreshHintSeconds: 120 },
        federatesWith: [
          {
            trustDomain: 'b.example',
            bundleEndpointUrl: 'https://mesh-b.example:8443/',
            endpointSpiffeId: 'spiffe://b.example/ns/istio-system/sa/meshpilot',
            trustBundleFile: '/etc/meshpilot/bundles/b.json',
          },
          { trustDomain: 'c.example', trustBundleFile: '/etc/meshpilot/c-roots.pem' },
        ],
        origin: undefined,
      },
    );
  });

  it('defaults namespace to default and keeps each object origin', () => {
    const r = parseConfigText('# c\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n', 'a.yaml');
    const sa = r.model?.serviceAccount('default', 'a');
    assert.equal(sa?.origin?.file, 'a.yaml');
    assert.equal(sa?.origin?.line, 2);
  });

  it('puts namespace-less documents in the --namespace given, and leaves named namespaces alone', () => {
    const text =
      'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: b, namespace: other}\n';
    const r = parseConfigText(text, 'a.yaml', { defaultNamespace: 'foo' });
    assert.deepEqual(r.diagnostics, []);
    assert.ok(r.model?.serviceAccount('foo', 'a'));
    assert.ok(r.model?.serviceAccount('other', 'b'));
    assert.equal(r.model?.serviceAccount('default', 'a'), undefined);
  });

  it('warns about each namespace-less document when asked, naming where it landed', () => {
    const text = 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n';
    const plain = parseConfigText(text, 'a.yaml', { warnImplicitNamespace: true });
    assert.deepEqual(
      plain.diagnostics.map((d) => [d.severity, d.line, d.path, d.message]),
      [['warning', 4, 'metadata.namespace', "no namespace: a lands in 'default'; write metadata.namespace"]],
    );
    const flagged = parseConfigText(text, 'a.yaml', { warnImplicitNamespace: true, defaultNamespace: 'foo' });
    assert.match(flagged.diagnostics[0]?.message ?? '', /lands in 'foo' \(--namespace\)/);
  });

  it('accepts an empty document stream as an empty mesh', () => {
    const r = parseConfigText('# nothing yet\n---\n', 'empty.yaml');
    assert.deepEqual(r.diagnostics, []);
    assert.equal(r.model?.workloads.length, 0);
  });

  it('reports a WorkloadEntry whose ServiceAccount is in another file as fine', () => {
    const r = parseConfigFiles([
      { fileName: 'a.yaml', text: 'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web}\n' },
      {
        fileName: 'b.yaml',
        text: 'apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\nspec: {address: 10.0.0.1, serviceAccount: web}\n',
      },
    ]);
    assert.deepEqual(r.diagnostics, []);
  });
});

describe('loadConfig', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshpilot-load-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports a missing path and a directory without config files', async () => {
    const r = await loadConfig([join(dir, 'missing.yaml')]);
    assert.equal(r.model, undefined);
    assert.deepEqual(
      r.diagnostics.map((d) => [d.severity, d.path, d.message]),
      [['error', '', 'cannot read: no such file or directory (ENOENT)']],
    );
    const empty = await loadConfig([dir]);
    assert.equal(empty.model, undefined);
    assert.match(empty.diagnostics[0]?.message ?? '', /no config files/);
  });

  it('reads *.yaml and *.yml in name order and skips other files', async () => {
    await writeFile(join(dir, 'b.yml'), 'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: b}\n');
    await writeFile(join(dir, 'a.yaml'), 'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n');
    await writeFile(join(dir, 'notes.txt'), 'not yaml: [');
    await writeFile(join(dir, '.a.yaml.swp'), 'not yaml: [');
    const r = await loadConfig([dir]);
    assert.deepEqual(r.diagnostics, []);
    assert.deepEqual(
      r.files.map((f) => f.slice(dir.length + 1)),
      ['a.yaml', 'b.yml'],
    );
    assert.deepEqual(
      r.model?.serviceAccounts.map((s) => s.name),
      ['a', 'b'],
    );
  });
});

describe('loading on a worker thread', () => {
  const testdata = fileURLToPath(new URL('../../../src/config/testdata/', import.meta.url));
  // Valid configs (a model) and invalid ones (diagnostics only) must come out the same either way.
  const cases = [
    [examples],
    [join(testdata, 'authorization-policy.in.yaml')],
    [join(testdata, 'request-authentication.in.yaml')],
    [join(testdata, 'mixed-directory.in')],
    [join(testdata, 'syntax-error.in.yaml')],
    [join(testdata, 'unknown-kinds.in.yaml')],
  ];
  for (const paths of cases) {
    it(`gives what the inline loader gives: ${paths.map((p) => p.split('/').filter(Boolean).slice(-1)[0]).join(', ')}`, async () => {
      const inline = await loadConfig(paths, { workerThresholdBytes: Infinity });
      const worker = await loadConfig(paths, { workerThresholdBytes: 0 });
      assert.deepEqual(worker.diagnostics, inline.diagnostics);
      assert.equal(worker.model?.version, inline.model?.version);
      assert.deepEqual(worker.model?.authorizationPolicies, inline.model?.authorizationPolicies);
    });
  }
});
