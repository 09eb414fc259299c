import assert from 'node:assert/strict';
import {
  createMeshModel,
  meshSettings,
  type AuthorizationPolicy,
  type ExtAuthzProvider,
  type AuthzRule,
  type MeshModel,
  type WorkloadEntry,
} from '../model/index.js';
import { compileAuthorization, compileInboundPolicy, evaluate, type AuthzRequest } from './index.js';

// Models built by hand, past the config loader's checks: the compiler must still fail closed.
const workload: WorkloadEntry = {
  namespace: 'shop',
  name: 'api',
  address: '127.0.0.81',
  labels: { app: 'api' },
  metadataLabels: {},
  serviceAccount: { namespace: 'shop', name: 'api' },
  ports: {},
  sidecar: true,
};

const empty = {
  principals: [],
  notPrincipals: [],
  requestPrincipals: [],
  notRequestPrincipals: [],
  namespaces: [],
  notNamespaces: [],
  ipBlocks: [],
  notIpBlocks: [],
  remoteIpBlocks: [],
  notRemoteIpBlocks: [],
};
const noOp = { hosts: [], notHosts: [], ports: [], notPorts: [], methods: [], notMethods: [], paths: [], notPaths: [] };
const fromPrincipal = (p: string): AuthzRule => ({ from: [{ source: { ...empty, principals: [p] } }], to: [], when: [] });
const toPath = (p: string): AuthzRule => ({ from: [], to: [{ operation: { ...noOp, paths: [p] } }], when: [] });
const policy = (name: string, action: AuthorizationPolicy['action'], rules: AuthzRule[]): AuthorizationPolicy => ({
  namespace: 'shop',
  name,
  action,
  rules,
  origin: { file: 'hand.yaml', line: 1, column: 1 },
});
const model = (...policies: AuthorizationPolicy[]): MeshModel =>
  createMeshModel({ workloads: [workload], authorizationPolicies: policies });

const web = 'spiffe://cluster.local/ns/shop/sa/web';
const PROVIDER: ExtAuthzProvider = {
  name: 'a',
  kind: 'http',
  service: 'authz.shop.svc.cluster.local',
  port: 9000,
  timeoutMs: 1000,
  failOpen: false,
  statusOnError: 403,
  clearRouteCache: false,
  includeRequestHeadersInCheck: [],
  includeAdditionalHeadersInCheck: {},
  headersToUpstreamOnAllow: [],
  headersToDownstreamOnDeny: [],
  headersToDownstreamOnAllow: [],
};
const run = (m: MeshModel, req: Partial<AuthzRequest>, protocol: 'http' | 'tcp' = 'http') =>
  evaluate(
    compileInboundPolicy(m, workload, 8080, protocol, () => undefined),
    { port: 8080, ...req },
  );

describe('compileAuthorization fails closed', () => {
  it('drops an ALLOW rule that cannot be compiled and keeps the others, with an error', () => {
    const m = model(policy('allow', 'ALLOW', [toPath('/a*b'), fromPrincipal('cluster.local/ns/shop/sa/web')]));
    const c = compileAuthorization(m, workload, 'http');
    assert.ok(
      c.diagnostics.some((d) => d.severity === 'error' && d.path === 'spec.rules[0].to[0].operation.paths[0]' && /middle/.test(d.message)),
    );
    assert.ok(c.diagnostics.some((d) => d.path === 'spec.rules[0]' && /dropped/.test(d.message)));
    assert.equal(c.diagnostics[0]?.file, 'hand.yaml');
    assert.equal(run(m, { sourcePrincipal: web, path: '/a/b' }).rule, '1');
    assert.equal(run(m, { sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/x', path: '/axb' }).verdict, 'deny');
  });

  it('an ALLOW policy whose only rule cannot be compiled allows nothing', () => {
    const m = model(policy('allow', 'ALLOW', [{ from: [], to: [], when: [{ key: 'request.host', values: ['x'], notValues: [] }] }]));
    assert.equal(run(m, { sourcePrincipal: web, path: '/' }).verdict, 'deny');
  });

  it('a DENY rule that cannot be compiled denies everything the policy selects', () => {
    const bad: AuthzRule = { from: [{ source: { ...empty, ipBlocks: ['10.0.0.0/33'] } }], to: [], when: [] };
    const m = model(policy('deny', 'DENY', [toPath('/admin'), bad]));
    const c = compileAuthorization(m, workload, 'http');
    assert.ok(c.diagnostics.some((d) => d.severity === 'error' && d.path === 'spec.rules[1].from[0].source.ipBlocks[0]'));
    assert.ok(c.diagnostics.some((d) => d.path === 'spec.rules[1]' && /denies every request/.test(d.message)));
    const d = run(m, { sourcePrincipal: web, path: '/public' });
    assert.deepEqual([d.verdict, d.policy, d.rule], ['deny', 'shop/deny', '1']);
  });

  it('an unknown condition key in a DENY rule denies everything; in a notValues it cannot open anything', () => {
    const m = model(policy('deny', 'DENY', [{ from: [], to: [], when: [{ key: 'request.host', values: [], notValues: ['x'] }] }]));
    assert.equal(run(m, { sourcePrincipal: web, path: '/' }).verdict, 'deny');
  });

  it('a policy that breaks the compiler denies every request to the workload', () => {
    const broken = { ...policy('broken', 'ALLOW', []), rules: null } as unknown as AuthorizationPolicy;
    const m = model(broken, policy('open', 'ALLOW', [{ from: [], to: [], when: [] }]));
    const c = compileAuthorization(m, workload, 'http');
    assert.ok(c.diagnostics.some((d) => d.severity === 'error' && /internal error/.test(d.message)));
    const d = run(m, { sourcePrincipal: web, path: '/' });
    assert.deepEqual([d.verdict, d.policy, d.rule], ['deny', 'shop/broken', 'internal-error']);
  });

  it('a model that breaks the whole compile gives a deny-all filter', () => {
    const m = model(policy('open', 'ALLOW', [{ from: [], to: [], when: [] }]));
    const exploding: MeshModel = {
      ...m,
      authorizationPoliciesFor: () => {
        throw new Error('boom');
      },
    };
    const c = compileInboundPolicy(exploding, workload, 8080, 'tcp', () => undefined);
    assert.equal(c.networkFilters.length, 1);
    assert.ok(c.diagnostics.some((d) => /internal error.*boom/.test(d.message)));
    assert.equal(evaluate(c, { port: 8080, sourcePrincipal: web }).verdict, 'deny');
  });

  it('on TCP an ALLOW rule with HTTP-only fields matches nothing, a DENY rule ignores them and denies more', () => {
    const allow = model(policy('allow', 'ALLOW', [toPath('/public')]));
    const c = compileAuthorization(allow, workload, 'tcp');
    assert.ok(c.diagnostics.some((d) => d.severity === 'warning' && /HTTP-only fields \(paths\)/.test(d.message)));
    assert.equal(run(allow, { sourcePrincipal: web }, 'tcp').verdict, 'deny');
    const deny = model(policy('deny', 'DENY', [toPath('/admin')]));
    assert.equal(run(deny, { sourcePrincipal: web }, 'tcp').verdict, 'deny');
    assert.equal(run(deny, { sourcePrincipal: web, path: '/public' }).verdict, 'allow');
  });

  it('equal input compiles to equal bytes', () => {
    const m = model(policy('b', 'ALLOW', [fromPrincipal('cluster.local/ns/shop/sa/web')]), policy('a', 'DENY', [toPath('/x')]));
    const one = compileAuthorization(m, workload, 'http').httpFilters.map((f) => Buffer.from(f.typedConfig.value).toString('hex'));
    const two = compileAuthorization(m, workload, 'http').httpFilters.map((f) => Buffer.from(f.typedConfig.value).toString('hex'));
    assert.deepEqual(one, two);
  });
});

describe('compileAuthorization: CUSTOM fails closed', () => {
  const custom = (name: string, provider: string): AuthorizationPolicy => ({ ...policy(name, 'CUSTOM', [toPath('/x')]), provider });
  const authzService = {
    namespace: 'shop',
    name: 'authz',
    labels: {},
    selector: { app: 'authz' },
    ports: [{ port: 9000, targetPort: 9000, protocol: 'TCP' as const }],
  };
  const authzWorkload: WorkloadEntry = { ...workload, name: 'authz', address: '127.0.0.82', labels: { app: 'authz' }, sidecar: false };
  const withProviders = (...ps: AuthorizationPolicy[]) =>
    createMeshModel({
      settings: meshSettings({
        extensionProviders: [
          { ...PROVIDER, name: 'a' },
          { ...PROVIDER, name: 'b' },
          { ...PROVIDER, name: 'nowhere', service: 'gone.shop.svc.cluster.local' },
        ],
      }),
      services: [authzService],
      workloads: [workload, authzWorkload],
      authorizationPolicies: ps,
    });

  it('denies every request when the provider is unknown (a model the loader would refuse)', () => {
    const m = withProviders(custom('c', 'missing'));
    const c = compileAuthorization(m, workload, 'http');
    assert.ok(c.diagnostics.some((d) => d.severity === 'error' && /no extensionProviders entry .* 'missing'.*fail closed/.test(d.message)));
    assert.equal(run(m, { path: '/elsewhere' }).verdict, 'deny');
  });

  it('denies every request when the provider’s service is not in the mesh, or two providers select one workload', () => {
    const gone = withProviders(custom('c', 'nowhere'));
    assert.ok(compileAuthorization(gone, workload, 'http').diagnostics.some((d) => /gone\.shop\.svc\.cluster\.local/.test(d.message)));
    assert.equal(run(gone, { path: '/elsewhere' }).verdict, 'deny');
    const two = withProviders(custom('c1', 'a'), custom('c2', 'b'));
    assert.ok(compileAuthorization(two, workload, 'http').diagnostics.some((d) => /only one CUSTOM provider/.test(d.message)));
    assert.equal(run(two, { path: '/elsewhere' }).verdict, 'deny');
  });

  it('takes a ServiceEntry host as the provider service (Istio’s local authorizer sample)', () => {
    const m = createMeshModel({
      settings: meshSettings({
        extensionProviders: [{ ...PROVIDER, name: 'local', kind: 'grpc', service: 'ext-authz-grpc.local', port: 9191 }],
      }),
      workloads: [workload],
      serviceEntries: [
        {
          namespace: 'shop',
          name: 'local-ext-authz',
          hosts: ['ext-authz-grpc.local'],
          addresses: [],
          ports: [{ number: 9191, protocol: 'GRPC', name: 'grpc' }],
          location: 'MESH_EXTERNAL',
          resolution: 'STATIC',
          endpoints: [{ address: '127.0.0.1', ports: {}, labels: {} }],
          subjectAltNames: [],
        },
      ],
      authorizationPolicies: [custom('c', 'local')],
    });
    assert.deepEqual(compileAuthorization(m, workload, 'http').diagnostics, []);
    assert.equal(run(m, { path: '/x' }).externalAuthz?.cluster, 'outbound|9191||ext-authz-grpc.local');
  });

  it('asks the authorizer only about matching requests: the evaluator names it', () => {
    const m = withProviders(custom('c', 'a'));
    const hit = run(m, { path: '/x' });
    assert.equal(hit.verdict, 'allow');
    assert.equal(hit.externalAuthz?.cluster, 'outbound|9000||authz.shop.svc.cluster.local');
    assert.equal(hit.externalAuthz?.policy, 'shop/c');
    assert.equal(run(m, { path: '/y' }).externalAuthz, undefined);
  });
});
