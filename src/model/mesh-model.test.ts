import assert from 'node:assert/strict';
import {
  applicationProtocol,
  createMeshModel,
  DEFAULT_MESH_SETTINGS,
  diffModels,
  positionOf,
  workloadPortFor,
  type AuthorizationPolicy,
  type MeshModelInput,
  type PeerAuthentication,
  type Service,
  type ServiceAccount,
  type WorkloadEntry,
} from './index.js';

const sa = (namespace: string, name: string): ServiceAccount => ({ namespace, name, labels: {} });
const svc = (namespace: string, name: string, selector: Record<string, string>): Service => ({
  namespace,
  name,
  labels: {},
  selector,
  ports: [{ name: 'http', port: 8080, targetPort: 8080, protocol: 'TCP' }],
});
const wl = (namespace: string, name: string, address: string, account: string, labels: Record<string, string>): WorkloadEntry => ({
  namespace,
  name,
  address,
  labels,
  metadataLabels: {},
  serviceAccount: { namespace, name: account },
  ports: {},
  sidecar: labels['security.istio.io/tlsMode'] === 'istio',
});
const pa = (namespace: string, name: string, selector?: Record<string, string>): PeerAuthentication => ({
  namespace,
  name,
  ...(selector ? { selector } : {}),
  mtlsMode: 'STRICT',
  portLevelMtls: {},
});
const allow = (namespace: string, name: string, principal: string): AuthorizationPolicy => ({
  namespace,
  name,
  action: 'ALLOW',
  rules: [
    {
      from: [
        {
          source: {
            principals: [principal],
            notPrincipals: [],
            requestPrincipals: [],
            notRequestPrincipals: [],
            namespaces: [],
            notNamespaces: [],
            ipBlocks: [],
            notIpBlocks: [],
            remoteIpBlocks: [],
            notRemoteIpBlocks: [],
          },
        },
      ],
      to: [],
      when: [],
    },
  ],
});

function input(): MeshModelInput {
  return {
    serviceAccounts: [sa('shop', 'web'), sa('shop', 'web-canary'), sa('shop', 'db')],
    services: [svc('shop', 'web', { app: 'web' }), svc('shop', 'db', { app: 'db' })],
    workloads: [
      wl('shop', 'web-2', '10.0.0.2', 'web-canary', { app: 'web', track: 'canary' }),
      wl('shop', 'web-1', '10.0.0.1', 'web', { app: 'web' }),
      wl('shop', 'web-3', '10.0.0.3', 'web', { app: 'web' }),
      wl('shop', 'db-1', '10.0.0.4', 'db', { app: 'db' }),
      wl('other', 'web-x', '10.0.0.5', 'web', { app: 'web' }),
    ],
    peerAuthentications: [pa('istio-system', 'default'), pa('shop', 'db', { app: 'db' }), pa('other', 'default')],
    authorizationPolicies: [allow('shop', 'all', 'cluster.local/ns/shop/sa/web')],
  };
}

describe('MeshModel', () => {
  it('sorts objects and looks them up by name', () => {
    const m = createMeshModel(input());
    assert.deepEqual(
      m.workloads.map((w) => `${w.namespace}/${w.name}`),
      ['other/web-x', 'shop/db-1', 'shop/web-1', 'shop/web-2', 'shop/web-3'],
    );
    assert.equal(m.service('shop', 'db')?.name, 'db');
    assert.equal(m.service('other', 'db'), undefined);
    assert.equal(m.workload('shop', 'web-1')?.address, '10.0.0.1');
    assert.equal(m.serviceAccount('shop', 'web')?.name, 'web');
    assert.deepEqual(m.settings, DEFAULT_MESH_SETTINGS);
  });

  it('selects workloads in the service namespace only', () => {
    const m = createMeshModel(input());
    assert.deepEqual(
      m.workloadsOf({ namespace: 'shop', name: 'web' }).map((w) => w.name),
      ['web-1', 'web-2', 'web-3'],
    );
    assert.deepEqual(
      m.servicesOf({ namespace: 'shop', name: 'db-1' }).map((s) => s.name),
      ['db'],
    );
    assert.deepEqual(m.servicesOf({ namespace: 'other', name: 'web-x' }), []);
    assert.deepEqual(m.workloadsOf({ namespace: 'shop', name: 'missing' }), []);
  });

  it('lists the distinct service accounts of a service, sorted', () => {
    const m = createMeshModel(input());
    assert.deepEqual(m.serviceAccountsOf({ namespace: 'shop', name: 'web' }), [
      { namespace: 'shop', name: 'web' },
      { namespace: 'shop', name: 'web-canary' },
    ]);
  });

  it('finds the policies that apply to a workload: its namespace and the root namespace', () => {
    const m = createMeshModel(input());
    const db = m.workload('shop', 'db-1') as WorkloadEntry;
    const web = m.workload('shop', 'web-1') as WorkloadEntry;
    assert.deepEqual(
      m.peerAuthenticationsFor(db).map((p) => `${p.namespace}/${p.name}`),
      ['istio-system/default', 'shop/db'],
    );
    assert.deepEqual(
      m.peerAuthenticationsFor(web).map((p) => `${p.namespace}/${p.name}`),
      ['istio-system/default'],
    );
    assert.equal(m.authorizationPoliciesFor(web).length, 1);
    assert.equal(m.requestAuthenticationsFor(web).length, 0);
  });

  it('lists applying policies in namespace order whichever side of the root namespace the workload is on', () => {
    const m = createMeshModel({
      serviceAccounts: [sa('aaa', 'x'), sa('zzz', 'x')],
      workloads: [wl('aaa', 'w', '10.0.0.1', 'x', {}), wl('zzz', 'w', '10.0.0.2', 'x', {})],
      peerAuthentications: [pa('zzz', 'b'), pa('istio-system', 'a'), pa('aaa', 'c'), pa('other', 'd'), pa('zzz', 'a')],
    });
    const names = (ns: string) => m.peerAuthenticationsFor(m.workload(ns, 'w')!).map((p) => `${p.namespace}/${p.name}`);
    assert.deepEqual(names('aaa'), ['aaa/c', 'istio-system/a']);
    assert.deepEqual(names('zzz'), ['istio-system/a', 'zzz/a', 'zzz/b']);
  });

  it('is frozen', () => {
    const m = createMeshModel(input());
    assert.throws(() => {
      (m.workloads as WorkloadEntry[]).push(m.workloads[0] as WorkloadEntry);
    });
    assert.throws(() => {
      (m.workloads[0] as { address: string }).address = '1.1.1.1';
    });
  });

  it('rejects duplicates as a bug', () => {
    assert.throws(() => createMeshModel({ serviceAccounts: [sa('a', 'b'), sa('a', 'b')] }), /duplicate ServiceAccount a\/b/);
  });

  it('versions by content: order and source positions do not count', () => {
    const a = createMeshModel(input());
    const shuffled = input();
    const b = createMeshModel({
      ...shuffled,
      workloads: [...(shuffled.workloads ?? [])]
        .reverse()
        .map((w) => ({ ...w, origin: { file: 'x.yaml', line: 3, column: 1, fields: new Map([['spec', { line: 4, column: 3 }]]) } })),
    });
    assert.equal(a.version, b.version);
    const c = createMeshModel({ ...input(), settings: { certTtlMs: 3_600_000 } });
    assert.notEqual(a.version, c.version);
  });
});

describe('diffModels', () => {
  it('treats every object as added without a previous model', () => {
    const m = createMeshModel(input());
    const d = diffModels(undefined, m);
    assert.equal(d.fromVersion, undefined);
    assert.equal(d.toVersion, m.version);
    assert.equal(d.changes.length, 14);
    assert.ok(d.changes.every((c) => c.op === 'added'));
    assert.ok(d.settingsChanged);
  });

  it('reports added, updated and removed objects with their kinds and namespaces', () => {
    const prev = createMeshModel(input());
    const i = input();
    const next = createMeshModel({
      ...i,
      workloads: (i.workloads ?? []).filter((w) => w.name !== 'web-3').map((w) => (w.name === 'web-1' ? { ...w, address: '10.0.0.9' } : w)),
      requestAuthentications: [{ namespace: 'other', name: 'jwt', jwtRules: [] }],
    });
    const d = diffModels(prev, next);
    assert.deepEqual(
      d.changes.map((c) => `${c.op} ${c.kind} ${c.namespace}/${c.name}`),
      ['added RequestAuthentication other/jwt', 'updated WorkloadEntry shop/web-1', 'removed WorkloadEntry shop/web-3'],
    );
    assert.deepEqual([...d.kinds].sort(), ['RequestAuthentication', 'WorkloadEntry']);
    assert.deepEqual([...d.namespaces].sort(), ['other', 'shop']);
    assert.equal(d.settingsChanged, false);
  });

  it('is empty between equal models and flags settings changes', () => {
    const a = createMeshModel(input());
    assert.equal(diffModels(a, createMeshModel(input())).changes.length, 0);
    const d = diffModels(a, createMeshModel({ ...input(), settings: { trustDomain: 'example.org' } }));
    assert.deepEqual([...d.kinds], ['MeshConfig']);
    assert.ok(d.settingsChanged);
  });
});

describe('model helpers', () => {
  it('maps a service port to the workload port', () => {
    const port = { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const };
    const w = wl('shop', 'w', '10.0.0.1', 'web', {});
    assert.equal(workloadPortFor(port, w), 8080);
    assert.equal(workloadPortFor(port, { ...w, ports: { http: 9090 } }), 9090);
  });

  it('derives the application protocol like Istio', () => {
    const p = (name?: string, appProtocol?: string) => ({ name, appProtocol, port: 1, targetPort: 1, protocol: 'TCP' as const });
    assert.equal(applicationProtocol(p('http')), 'http');
    assert.equal(applicationProtocol(p('grpc-api')), 'grpc');
    assert.equal(applicationProtocol(p('web')), undefined);
    assert.equal(applicationProtocol(p('tcp', 'HTTP')), 'http');
    assert.equal(applicationProtocol(p()), undefined);
  });

  it('finds the position of a field path, falling back to ancestors', () => {
    const origin = {
      file: 'p.yaml',
      line: 10,
      column: 1,
      fields: new Map([
        ['spec.rules[1]', { line: 20, column: 7 }],
        ['spec.rules[1].from[0].source.principals[0]', { line: 23, column: 17 }],
      ]),
    };
    assert.deepEqual(positionOf(origin, 'spec.rules[1].from[0].source.principals[0]'), { file: 'p.yaml', line: 23, column: 17 });
    assert.deepEqual(positionOf(origin, 'spec.rules[1].to[0]'), { file: 'p.yaml', line: 20, column: 7 });
    assert.deepEqual(positionOf(origin, 'spec.action'), { file: 'p.yaml', line: 10, column: 1 });
    assert.equal(positionOf(undefined, 'spec'), undefined);
  });
});
