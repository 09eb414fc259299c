// CUSTOM authorization with real Envoy (issue 15, item 6): requests a CUSTOM policy's rules match
// go to an external authorizer (HTTP or gRPC, on loopback) that allows or denies them; requests
// they do not match never reach it; a DENY policy still applies after it; a CUSTOM policy naming an
// unknown provider is refused and the last good config keeps serving.
import assert from 'node:assert/strict';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { eventually, httpRequest } from './harness/index.js';
import { startGrpcAuthorizer, startHttpAuthorizer, type TestAuthorizer } from './kit/ext-authorizers.js';
import { startMesh, type TestMesh, type TestWorkload } from './kit/mesh.js';
import { backend, backendHost, datastore, datastoreHost, frontend, loopbackAddress, photoAppConfig } from './kit/photo-app.js';

const AUTHZ_ADDRESS = loopbackAddress(19);
const HTTP_AUTHZ_PORT = 8000;
const GRPC_AUTHZ_PORT = 9000;

// The photo app with two external authorizers in the MeshConfig, and their service as a workload
// without a sidecar (the sidecars reach it in plaintext, as Istio's auto mTLS would).
const config = () =>
  photoAppConfig((y) =>
    y.replace(
      'spec:\n  trustDomain: cluster.local\n',
      `spec:
  trustDomain: cluster.local
  extensionProviders:
    - name: test-http
      envoyExtAuthzHttp:
        service: ext-authz.photo-ns.svc.cluster.local
        port: "${HTTP_AUTHZ_PORT}"
        timeout: 5s
        pathPrefix: /check
        includeRequestHeadersInCheck: ["x-ext-authz"]
        headersToUpstreamOnAllow: ["x-ext-authz-check-result"]
        headersToDownstreamOnDeny: ["x-ext-authz-check-result"]
    - name: test-grpc
      envoyExtAuthzGrpc:
        service: ext-authz.photo-ns.svc.cluster.local
        port: ${GRPC_AUTHZ_PORT}
        timeout: 5s
`,
    ),
  ) +
  `---
apiVersion: v1
kind: ServiceAccount
metadata: { name: ext-authz, namespace: photo-ns }
---
apiVersion: v1
kind: Service
metadata: { name: ext-authz, namespace: photo-ns }
spec:
  selector: { app: ext-authz }
  ports: [{ name: http, port: ${HTTP_AUTHZ_PORT} }, { name: grpc, port: ${GRPC_AUTHZ_PORT} }]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ext-authz, namespace: photo-ns }
spec: { address: ${AUTHZ_ADDRESS}, serviceAccount: ext-authz, labels: { app: ext-authz } }
`;

const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: backend-ext-authz, namespace: photo-ns }
spec:
  selector: { matchLabels: { app: photo-backend } }
  action: CUSTOM
  provider: { name: test-http }
  rules:
    - to: [{ operation: { paths: ["/guarded/*"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: backend-deny-secret, namespace: photo-ns }
spec:
  selector: { matchLabels: { app: photo-backend } }
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/guarded/secret"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: datastore-ext-authz, namespace: datastore-ns }
spec:
  selector: { matchLabels: { app: datastore } }
  action: CUSTOM
  provider: { name: test-grpc }
  rules:
    - to: [{ operation: { paths: ["/guarded/*"] } }]
`;

describe('CUSTOM authorization with real Envoy (issue 15)', function () {
  this.timeout(120_000);
  let mesh: TestMesh;
  let httpAuthz: TestAuthorizer;
  let grpcAuthz: TestAuthorizer;

  const call = (from: TestWorkload, host: string, path: string, verdict?: string) =>
    httpRequest({
      host: from.address,
      port: OUTBOUND_HTTP_PORT,
      path,
      headers: { host, ...(verdict ? { 'x-ext-authz': verdict } : {}) },
    });

  before(async () => {
    httpAuthz = await startHttpAuthorizer(AUTHZ_ADDRESS, HTTP_AUTHZ_PORT);
    grpcAuthz = await startGrpcAuthorizer(AUTHZ_ADDRESS, GRPC_AUTHZ_PORT);
    mesh = await startMesh({ 'mesh.yaml': config(), 'policy.yaml': POLICIES }, { apps: [frontend, backend, datastore] });
    await mesh.startSidecar(frontend);
    await mesh.startSidecar(backend);
    await mesh.startSidecar(datastore);
  });
  afterEach(function () {
    mesh?.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
    await httpAuthz?.close();
    await grpcAuthz?.close();
  });

  it('asks the HTTP authorizer for requests the CUSTOM rules match: it allows and denies', async () => {
    const ok = await eventually(async () => {
      const r = await call(frontend, backendHost, '/guarded/photo', 'allow');
      return r.status === 200 ? r : false;
    });
    // The authorizer's header reached the app (headersToUpstreamOnAllow), and its path had the prefix.
    assert.equal((ok.json as { headers: Record<string, string> }).headers['x-ext-authz-check-result'], 'allowed');
    assert.ok(httpAuthz.checks.some((c) => c.path === '/check/guarded/photo' && c.verdict === 'allow'));
    const denied = await call(frontend, backendHost, '/guarded/photo', 'deny');
    assert.equal(denied.status, 403);
    assert.match(denied.body, /denied by the http authorizer/);
    assert.equal(denied.headers['x-ext-authz-check-result'], 'denied');
  });

  it('never asks the authorizer about requests the rules do not match', async () => {
    const before = httpAuthz.checks.length;
    const r = await call(frontend, backendHost, '/public', 'deny');
    assert.equal(r.status, 200);
    assert.equal(httpAuthz.checks.length, before);
  });

  it('runs CUSTOM before DENY: the authorizer allows, the DENY policy still denies', async () => {
    const before = httpAuthz.checks.length;
    const r = await call(frontend, backendHost, '/guarded/secret', 'allow');
    assert.equal(r.status, 403);
    assert.match(r.body, /RBAC: access denied/);
    assert.equal(httpAuthz.checks.length, before + 1);
  });

  it('asks the gRPC authorizer (envoy.service.auth.v3.Authorization/Check): it allows and denies', async () => {
    const ok = await eventually(async () => {
      const r = await call(backend, datastoreHost, '/guarded/blob', 'allow');
      return r.status === 200 ? r : false;
    });
    assert.equal(ok.status, 200);
    assert.ok(grpcAuthz.checks.some((c) => c.path === '/guarded/blob' && c.verdict === 'allow'));
    const denied = await call(backend, datastoreHost, '/guarded/blob', 'deny');
    assert.equal(denied.status, 403);
    assert.match(denied.body, /denied by the grpc authorizer/);
    const open = await call(backend, datastoreHost, '/list', 'deny');
    assert.equal(open.status, 200);
  });

  it('refuses a CUSTOM policy naming an unknown provider; the last good config keeps serving', async () => {
    const bad = POLICIES.replace('provider: { name: test-http }', 'provider: { name: no-such-authorizer }');
    mesh.writeConfig('policy.yaml', bad);
    const line = await eventually(
      () => mesh.logLines.find((l) => JSON.stringify(l.fields).includes("unknown provider 'no-such-authorizer'")) ?? false,
      { description: 'the config error in the control plane log' },
    );
    assert.match(JSON.stringify(line.fields), /policy\.yaml/);
    // Still the last good policy: the authorizer decides.
    assert.equal((await call(frontend, backendHost, '/guarded/photo', 'allow')).status, 200);
    assert.equal((await call(frontend, backendHost, '/guarded/photo', 'deny')).status, 403);
    mesh.writeConfig('policy.yaml', POLICIES);
  });
});
