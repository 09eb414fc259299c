// Issue 15 item 2 and issue 13 item 8 with real Envoy: a dry-run AuthorizationPolicy is evaluated
// by the sidecar's shadow rules (its counters move) and never denies; path templates ({*}, {**})
// and serviceAccounts are enforced as `meshpilot authz check` says.
import assert from 'node:assert/strict';
import { eventually, type EnvoyProcess } from './harness/index.js';
import { startMesh, type TestMesh, type TestWorkload } from './kit/mesh.js';
import { APP_PORT, SERVICE_PORT } from './kit/photo-app.js';

const server: TestWorkload = { name: 'server', namespace: 'fields', address: '127.0.0.91' };
const client: TestWorkload = { name: 'client', namespace: 'fields', address: '127.0.0.92' };
const stranger: TestWorkload = { name: 'stranger', namespace: 'fields', address: '127.0.0.93' };
const HOST = `server.fields.svc.cluster.local:${SERVICE_PORT}`;

const workload = (w: TestWorkload) => `---
apiVersion: v1
kind: ServiceAccount
metadata: { name: ${w.name}, namespace: ${w.namespace} }
---
apiVersion: v1
kind: Service
metadata: { name: ${w.name}, namespace: ${w.namespace} }
spec:
  selector: { app: ${w.name} }
  ports: [{ name: http, port: ${SERVICE_PORT}, targetPort: ${APP_PORT} }]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ${w.name}, namespace: ${w.namespace} }
spec:
  address: ${w.address}
  serviceAccount: ${w.name}
  labels: { app: ${w.name}, security.istio.io/tlsMode: istio }
`;

const POLICY = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: server-allow, namespace: fields }
spec:
  selector: { matchLabels: { app: server } }
  rules:
    - from: [{ source: { serviceAccounts: [fields/client] } }]
      to: [{ operation: { paths: ["/items/{*}/reviews", "/static/{**}", "/headers"] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-headers
  namespace: fields
  annotations: { "istio.io/dry-run": "true" }
spec:
  selector: { matchLabels: { app: server } }
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/headers"] } }] }]
`;

describe('Istio fields with real Envoy: dry-run shadow rules, path templates, serviceAccounts', function () {
  this.timeout(120_000);
  let mesh: TestMesh;
  let serverEnvoy: EnvoyProcess;

  before(async () => {
    mesh = await startMesh({ 'mesh.yaml': [server, client, stranger].map(workload).join(''), 'policy.yaml': POLICY }, { apps: [server] });
    [serverEnvoy] = await Promise.all([server, client, stranger].map((w) => mesh.startSidecar(w)));
    await eventually(async () => (await mesh.call(client, HOST, '/items/1/reviews')).status === 200, {
      description: 'client → server',
      timeoutMs: 20_000,
    });
  });
  afterEach(function () {
    mesh?.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
  });

  it('path templates: {*} is one segment, {**} any number after the prefix', async () => {
    const status = async (path: string) => (await mesh.call(client, HOST, path)).status;
    assert.equal(await status('/items/42/reviews'), 200);
    assert.equal(await status('/items/4/2/reviews'), 403);
    assert.equal(await status('/static/css/site.css'), 200);
    assert.equal(await status('/static'), 403);
    assert.equal(await status('/other'), 403);
  });

  it('serviceAccounts: only fields/client is allowed', async () => {
    assert.equal((await mesh.call(stranger, HOST, '/items/1/reviews')).status, 403);
  });

  it('a dry-run DENY lets the request through and counts it as shadow denied', async () => {
    // Envoy names it <http stat prefix>rbac.istio_dry_run_deny_.shadow_denied (shadow_rules_stat_prefix as Istio sets it).
    const shadowDenied = async () =>
      [...(await serverEnvoy.stats('rbac\\.istio_dry_run_deny_\\.shadow_denied$')).values()].reduce((a, b) => a + b, 0);
    const start = await shadowDenied();
    assert.equal((await mesh.call(client, HOST, '/headers')).status, 200);
    await eventually(async () => (await shadowDenied()) > start, {
      description: 'the shadow_denied counter of the dry-run rules',
      timeoutMs: 10_000,
    });
  });
});
