// Issue 15 item 4 with real Envoy (loopback mode): ServiceEntry hosts reached by name through the
// client's sidecar. STATIC endpoints (HTTP and TCP), DNS resolution of a name that resolves here
// (`localhost`), MESH_INTERNAL with a workloadSelector (mTLS to a WorkloadEntry outside any
// Service), and a bad ServiceEntry refused while the last good config keeps serving.
import assert from 'node:assert/strict';
import net from 'node:net';
import { eventually, startHttpUpstream, startTcpEcho, type HttpUpstream, type TcpEcho, type UpstreamAnswer } from './harness/index.js';
import { startMesh, type TestMesh, type TestWorkload } from './kit/mesh.js';
import { APP_PORT, loopbackAddress, xfccUri } from './kit/photo-app.js';

const client: TestWorkload = { name: 'client', namespace: 'egress', address: loopbackAddress(61) };
const legacy: TestWorkload = { name: 'legacy', namespace: 'egress', address: loopbackAddress(62) };
const TCP_PORT = 15432;

const workloads = `apiVersion: v1
kind: ServiceAccount
metadata: { name: client, namespace: egress }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: legacy, namespace: egress }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client, namespace: egress }
spec:
  address: ${client.address}
  serviceAccount: client
  labels: { app: client, security.istio.io/tlsMode: istio }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: legacy, namespace: egress }
spec:
  address: ${legacy.address}
  serviceAccount: legacy
  labels: { app: legacy, security.istio.io/tlsMode: istio }
---
apiVersion: v1
kind: Service
metadata: { name: client, namespace: egress }
spec:
  selector: { app: client }
  ports: [{ name: http, port: 9080, targetPort: ${APP_PORT} }]
`;

function entries(staticHttp: HttpUpstream, dnsHttp: HttpUpstream, echo: TcpEcho): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: billing, namespace: egress }
spec:
  hosts: [billing.partner.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
    - { number: 80, name: http, protocol: HTTP }
    - { number: ${TCP_PORT}, name: tcp-db, protocol: TCP }
  endpoints:
    - address: ${staticHttp.host}
      ports: { http: ${staticHttp.port}, tcp-db: ${echo.port} }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: catalog, namespace: egress }
spec:
  hosts: [catalog.partner.test]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints: [{ address: localhost, ports: { http: ${dnsHttp.port} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: legacy, namespace: egress }
spec:
  hosts: [legacy.egress.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 7070, name: http, protocol: HTTP, targetPort: ${APP_PORT} }]
  workloadSelector: { labels: { app: legacy } }
`;
}

/** Sends a line over TCP to `host:port` and returns what comes back. */
function tcpRoundTrip(host: string, port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let got = '';
    const timer = setTimeout(() => socket.destroy(new Error('tcp round trip timed out')), 5_000);
    socket.on('connect', () => socket.write(line));
    socket.on('data', (d) => {
      got += d.toString();
      if (got.length >= line.length) socket.end();
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

describe('ServiceEntry with real Envoy', function () {
  this.timeout(120_000);
  let mesh: TestMesh;
  let staticHttp: HttpUpstream;
  let dnsHttp: HttpUpstream;
  let echo: TcpEcho;

  before(async () => {
    staticHttp = await startHttpUpstream({ name: 'billing', host: loopbackAddress(63) });
    // `localhost` resolves to 127.0.0.1 here; the DNS cluster looks up IPv4 only.
    dnsHttp = await startHttpUpstream({ name: 'catalog', host: '127.0.0.1' });
    echo = await startTcpEcho({ host: loopbackAddress(63) });
    mesh = await startMesh({ 'mesh.yaml': workloads, 'entries.yaml': entries(staticHttp, dnsHttp, echo) }, { apps: [legacy] });
    await Promise.all([client, legacy].map((w) => mesh.startSidecar(w)));
  });
  afterEach(function () {
    mesh?.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
    await Promise.all([staticHttp?.close(), dnsHttp?.close(), echo?.close()]);
  });

  it('STATIC: an app calls the external host by name through its sidecar and reaches the endpoint, in plaintext', async () => {
    const before = staticHttp.requestCount;
    const res = await eventually(
      async () => {
        const r = await mesh.call(client, 'billing.partner.test', '/invoices');
        return r.status === 200 ? r : false;
      },
      { description: 'billing.partner.test through the sidecar', timeoutMs: 20_000 },
    );
    const answer = res.json as UpstreamAnswer;
    assert.equal(answer.server, 'billing');
    assert.equal(answer.path, '/invoices');
    assert.equal(answer.headers.host, 'billing.partner.test');
    assert.equal(answer.headers['x-forwarded-client-cert'], undefined, 'MESH_EXTERNAL: no mesh identity sent');
    assert.ok(staticHttp.requestCount > before);
  });

  it('STATIC TCP port: the client connects to its own address at the port and reaches the endpoint', async () => {
    const got = await eventually(async () => (await tcpRoundTrip(client.address, TCP_PORT, 'ping\n').catch(() => '')) || false, {
      description: 'the TCP entry',
      timeoutMs: 20_000,
    });
    assert.equal(got, 'ping\n');
    assert.ok(echo.connectionCount > 0);
  });

  it('DNS: the endpoint `localhost` is resolved by Envoy (STRICT_DNS) and reached', async () => {
    const res = await eventually(
      async () => {
        const r = await mesh.call(client, 'catalog.partner.test:80', '/items');
        return r.status === 200 ? r : false;
      },
      { description: 'catalog.partner.test', timeoutMs: 20_000 },
    );
    assert.equal((res.json as UpstreamAnswer).server, 'catalog');
  });

  it('MESH_INTERNAL with a workloadSelector: mTLS to the selected WorkloadEntry, which sees the caller’s SPIFFE ID', async () => {
    const res = await eventually(
      async () => {
        const r = await mesh.call(client, 'legacy.egress.internal:7070', '/');
        return r.status === 200 ? r : false;
      },
      { description: 'legacy.egress.internal', timeoutMs: 20_000 },
    );
    const answer = res.json as UpstreamAnswer;
    assert.equal(answer.server, 'legacy');
    assert.equal(xfccUri(answer.headers as Record<string, unknown>), 'spiffe://cluster.local/ns/egress/sa/client');
  });

  it('a host no ServiceEntry declares has no route', async () => {
    assert.equal((await mesh.call(client, 'undeclared.partner.test', '/')).status, 404);
  });

  it('a ServiceEntry for a host a Service defines is refused with file, line and field; the last good config keeps serving', async () => {
    mesh.writeConfig(
      'bad.yaml',
      `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: shadow, namespace: egress }
spec:
  hosts: [client.egress.svc.cluster.local]
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1 }]
`,
    );
    const rejected = await eventually(
      () =>
        mesh.logLines.find((l) => l.msg === 'config rejected' && String(l.fields.message).includes('already defined by Service')) ?? false,
      { description: 'the rejection in the log', timeoutMs: 15_000 },
    );
    assert.match(String(rejected.fields.file), /bad\.yaml$/);
    assert.equal(rejected.fields.line, 5);
    assert.equal(rejected.fields.path, 'spec.hosts[0]');
    assert.equal((await mesh.call(client, 'billing.partner.test', '/')).status, 200);
  });
});
