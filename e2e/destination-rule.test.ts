// Issue 15 item 3 with real Envoy (loopback mode): a DestinationRule's TLS mode overrides auto
// mTLS (DISABLE toward a PERMISSIVE server is plaintext, proved by the client's TLS counters;
// toward a STRICT server it fails, as in Istio), SIMPLE and MUTUAL originate TLS to servers outside
// the mesh with certificates from files (a server with another CA is refused), and loadBalancer,
// connectionPool, outlierDetection and subsets reach the client's cluster.
import assert from 'node:assert/strict';
import { eventually, type EnvoyProcess, type UpstreamAnswer } from './harness/index.js';
import { startMesh, type TestMesh, type TestWorkload } from './kit/mesh.js';
import { APP_PORT, loopbackAddress, SERVICE_PORT, xfccUri } from './kit/photo-app.js';
import { makeTestPki, startHttpsEcho, type HttpsAnswer, type HttpsEcho, type TestPki } from './kit/test-pki.js';

const NS = 'drse';
const w = (name: string, last: number): TestWorkload => ({ name, namespace: NS, address: loopbackAddress(last) });
const client = w('client', 71);
const plain = w('plain', 72);
const strict = w('strict', 73);
const tuned = w('tuned', 74);
const host = (s: TestWorkload) => `${s.name}.${NS}.svc.cluster.local`;

const workload = (s: TestWorkload, labels = '') => `---
apiVersion: v1
kind: ServiceAccount
metadata: { name: ${s.name}, namespace: ${NS} }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ${s.name}, namespace: ${NS} }
spec:
  address: ${s.address}
  serviceAccount: ${s.name}
  labels: { app: ${s.name}, security.istio.io/tlsMode: istio${labels} }
---
apiVersion: v1
kind: Service
metadata: { name: ${s.name}, namespace: ${NS} }
spec:
  selector: { app: ${s.name} }
  ports: [{ name: http, port: ${SERVICE_PORT}, targetPort: ${APP_PORT} }]
`;

const meshRules = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict, namespace: ${NS} }
spec:
  selector: { matchLabels: { app: strict } }
  mtls: { mode: STRICT }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: plain, namespace: ${NS} }
spec:
  host: plain
  trafficPolicy: { tls: { mode: DISABLE } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: strict, namespace: ${NS} }
spec:
  host: strict
  trafficPolicy: { tls: { mode: DISABLE } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: tuned, namespace: ${NS} }
spec:
  host: tuned.${NS}.svc.cluster.local
  trafficPolicy:
    loadBalancer: { simple: LEAST_REQUEST }
    connectionPool:
      tcp: { maxConnections: 7, connectTimeout: 250ms }
      http: { http1MaxPendingRequests: 5, http2MaxRequests: 9, maxRequestsPerConnection: 4, maxRetries: 2, idleTimeout: 30s }
    outlierDetection: { consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, interval: 5s, baseEjectionTime: 20s, maxEjectionPercent: 50 }
  subsets:
    - name: v1
      labels: { version: v1 }
    - name: v2
      labels: { version: v2 }
`;

function external(simple: HttpsEcho, mutual: HttpsEcho, pki: TestPki, otherPki: TestPki): string {
  const entry = (name: string, server: HttpsEcho) => `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: ${NS} }
spec:
  hosts: [${name}.partner.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP, targetPort: ${server.port} }]
  endpoints: [{ address: ${server.host} }]
`;
  return `${entry('secure', simple)}${entry('mutual', mutual)}${entry('wrongca', simple)}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: secure, namespace: ${NS} }
spec:
  host: secure.partner.test
  trafficPolicy:
    tls: { mode: SIMPLE, caCertificates: ${pki.caCert} }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: mutual, namespace: ${NS} }
spec:
  host: mutual.partner.test
  trafficPolicy:
    portLevelSettings:
      - port: { number: 80 }
        tls: { mode: MUTUAL, clientCertificate: ${pki.clientCert}, privateKey: ${pki.clientKey}, caCertificates: ${pki.caCert}, sni: secure.partner.test, subjectAltNames: [secure.partner.test] }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: wrongca, namespace: ${NS} }
spec:
  host: wrongca.partner.test
  trafficPolicy:
    tls: { mode: SIMPLE, caCertificates: ${otherPki.caCert}, sni: secure.partner.test, subjectAltNames: [secure.partner.test] }
`;
}

// Envoy's TLS counters of one client cluster: `ssl.handshake` exists only on a cluster with a TLS socket.
async function handshakes(envoy: EnvoyProcess, cluster: string): Promise<number> {
  const escaped = cluster.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const stats = await envoy.stats(`^cluster\\.${escaped}\\.ssl\\.handshake$`);
  return [...stats.values()].reduce((a, b) => a + b, 0);
}

describe('DestinationRule with real Envoy', function () {
  this.timeout(120_000);
  let mesh: TestMesh;
  let clientEnvoy: EnvoyProcess;
  let pki: TestPki;
  let otherPki: TestPki;
  let simple: HttpsEcho;
  let mutual: HttpsEcho;

  before(async () => {
    pki = makeTestPki('partner', 'secure.partner.test');
    otherPki = makeTestPki('other', 'secure.partner.test');
    simple = await startHttpsEcho({ name: 'simple', host: loopbackAddress(75), pki });
    mutual = await startHttpsEcho({ name: 'mutual', host: loopbackAddress(75), pki, requireClientCert: true });
    mesh = await startMesh(
      {
        'mesh.yaml': [workload(client), workload(plain), workload(strict), workload(tuned, ', version: v1')].join(''),
        'rules.yaml': meshRules,
        'external.yaml': external(simple, mutual, pki, otherPki),
      },
      { apps: [plain, strict, tuned] },
    );
    [clientEnvoy] = await Promise.all([client, plain, strict, tuned].map((s) => mesh.startSidecar(s)));
  });
  afterEach(function () {
    mesh?.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
    await Promise.all([simple?.close(), mutual?.close()]);
    pki?.remove();
    otherPki?.remove();
  });

  const ok = async (hostHeader: string, path = '/') =>
    eventually(
      async () => {
        const r = await mesh.call(client, hostHeader, path);
        return r.status === 200 ? r : false;
      },
      { description: hostHeader, timeoutMs: 20_000 },
    );

  it('without tls in the rule, auto mTLS: the client cluster does TLS handshakes and the server sees the caller', async () => {
    const res = await ok(`${host(tuned)}:${SERVICE_PORT}`);
    assert.equal(xfccUri((res.json as UpstreamAnswer).headers as Record<string, unknown>), `spiffe://cluster.local/ns/${NS}/sa/client`);
    assert.ok((await handshakes(clientEnvoy, `outbound|${SERVICE_PORT}||${host(tuned)}`)) > 0);
  });

  it('DISABLE toward a PERMISSIVE server: plaintext (no TLS handshake on the cluster, no caller identity at the server)', async () => {
    const cluster = `outbound|${SERVICE_PORT}||${host(plain)}`;
    const res = await ok(`${host(plain)}:${SERVICE_PORT}`);
    const answer = res.json as UpstreamAnswer;
    assert.equal(answer.server, 'plain');
    assert.equal(answer.headers['x-forwarded-client-cert'], undefined, 'the plaintext chain answered');
    assert.equal(await handshakes(clientEnvoy, cluster), 0);
    const connections = await clientEnvoy.stat(`cluster.${cluster}.upstream_cx_total`);
    assert.ok((connections ?? 0) > 0, 'the cluster did connect');
  });

  it('DISABLE toward a STRICT server fails, as in Istio (the server takes only mTLS)', async () => {
    const status = (await mesh.call(client, `${host(strict)}:${SERVICE_PORT}`, '/')).status;
    assert.equal(status, 503);
  });

  it('SIMPLE: the sidecar originates TLS to an external HTTPS server, checking it against the rule’s CA, with the host as SNI', async () => {
    const res = await ok('secure.partner.test', '/pay');
    const answer = res.json as HttpsAnswer;
    assert.equal(answer.server, 'simple');
    assert.equal(answer.sni, 'secure.partner.test');
    assert.equal(answer.clientCn, undefined, 'SIMPLE presents no client certificate');
    assert.ok((await handshakes(clientEnvoy, 'outbound|80||secure.partner.test')) > 0);
  });

  it('SIMPLE with another CA: the server is refused (the certificate is verified)', async () => {
    const before = simple.requestCount;
    const status = (await mesh.call(client, 'wrongca.partner.test', '/')).status;
    assert.equal(status, 503);
    assert.equal(simple.requestCount, before, 'no request reached the server');
    const failures = await clientEnvoy.stats('^cluster\\.outbound\\|80\\|\\|wrongca\\.partner\\.test\\.ssl\\.fail_verify_error$');
    assert.ok(
      [...failures.values()].some((v) => v > 0),
      `verification failures counted: ${JSON.stringify([...failures])}`,
    );
  });

  it('MUTUAL (port level): the client certificate and key come from files and the server accepts them', async () => {
    const res = await ok('mutual.partner.test', '/');
    const answer = res.json as HttpsAnswer;
    assert.equal(answer.server, 'mutual');
    assert.equal(answer.clientCn, 'client');
  });

  it('loadBalancer, connectionPool, outlierDetection and subsets are in the client’s config_dump', async () => {
    // The JSON form of the Cluster proto, the fields this test reads.
    interface DumpedCluster {
      name: string;
      lb_policy?: string;
      connect_timeout?: string;
      circuit_breakers: { thresholds: Record<string, number>[] };
      outlier_detection: Record<string, number | string>;
      typed_extension_protocol_options: Record<string, { common_http_protocol_options: Record<string, unknown> }>;
    }
    const dump = (await clientEnvoy.configDump('resource=dynamic_active_clusters')) as { configs: { cluster: DumpedCluster }[] };
    const cluster = dump.configs.map((c) => c.cluster).find((c) => c.name === `outbound|${SERVICE_PORT}||${host(tuned)}`);
    assert.ok(cluster, 'the tuned cluster');
    assert.equal(cluster.lb_policy, 'LEAST_REQUEST');
    assert.equal(cluster.connect_timeout, '0.250s');
    assert.deepEqual(cluster.circuit_breakers.thresholds[0], {
      max_connections: 7,
      max_pending_requests: 5,
      max_requests: 9,
      max_retries: 2,
    });
    assert.equal(cluster.outlier_detection.consecutive_5xx, 3);
    assert.equal(cluster.outlier_detection.consecutive_gateway_failure, 2);
    assert.equal(cluster.outlier_detection.interval, '5s');
    assert.equal(cluster.outlier_detection.base_ejection_time, '20s');
    assert.equal(cluster.outlier_detection.max_ejection_percent, 50);
    const http = cluster.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']!;
    assert.equal(http.common_http_protocol_options.idle_timeout, '30s');
    assert.equal(http.common_http_protocol_options.max_requests_per_connection, 4);
    const names = dump.configs.map((c) => c.cluster.name);
    assert.ok(names.includes(`outbound|${SERVICE_PORT}|v1|${host(tuned)}`), names.join(', '));
    assert.ok(names.includes(`outbound|${SERVICE_PORT}|v2|${host(tuned)}`));
    const eds = (await clientEnvoy.configDump('resource=dynamic_endpoint_configs&include_eds')) as {
      configs: { endpoint_config: { cluster_name: string; endpoints?: { lb_endpoints?: unknown[] }[] } }[];
    };
    const count = (name: string) =>
      eds.configs.find((c) => c.endpoint_config.cluster_name === name)?.endpoint_config.endpoints?.[0]?.lb_endpoints?.length ?? 0;
    assert.equal(count(`outbound|${SERVICE_PORT}|v1|${host(tuned)}`), 1);
    assert.equal(count(`outbound|${SERVICE_PORT}|v2|${host(tuned)}`), 0);
  });

  it('a DestinationRule whose host matches nothing is a warning naming file, line and field; the mesh keeps working', async () => {
    mesh.writeConfig(
      'orphan.yaml',
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: orphan, namespace: ${NS} }
spec:
  host: nowhere
  trafficPolicy: { tls: { mode: DISABLE } }
`,
    );
    const warned = await eventually(
      () =>
        mesh.logLines.find((l) => l.msg === 'config warning' && String(l.fields.message).includes('matches no Service or ServiceEntry')) ??
        false,
      { description: 'the warning in the log', timeoutMs: 15_000 },
    );
    assert.match(String(warned.fields.file), /orphan\.yaml$/);
    assert.equal(warned.fields.line, 5);
    assert.equal(warned.fields.path, 'spec.host');
    await eventually(() => mesh.logLines.some((l) => l.msg === 'config accepted' && l.fields.version !== undefined), {
      description: 'the config with the orphan rule accepted',
      timeoutMs: 15_000,
    });
    assert.equal((await mesh.call(client, `${host(tuned)}:${SERVICE_PORT}`, '/')).status, 200);
  });
});
