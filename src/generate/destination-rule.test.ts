import assert from 'node:assert/strict';
import { parseConfigText } from '../config/index.js';
import { mustTrustDomain } from '../identity/index.js';
import type { MeshModel } from '../model/index.js';
import { Any, Cluster, Cluster_LbPolicy, ClusterLoadAssignment, TypeUrl, UpstreamTlsContext } from '../proto/index.js';
import type { EncodedResource } from '../snapshot/index.js';
import { generateAll, NO_POLICY, PushContext, ResourceMemo, type NodeView } from './index.js';

const mesh = `
apiVersion: v1
kind: ServiceAccount
metadata: { name: client, namespace: shop }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: reviews, namespace: shop }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client, namespace: shop }
spec: { address: 127.0.0.21, serviceAccount: client, labels: { app: client, security.istio.io/tlsMode: istio } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client-canary, namespace: shop }
spec: { address: 127.0.0.22, serviceAccount: client, labels: { app: client, track: canary, security.istio.io/tlsMode: istio } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-v1, namespace: shop }
spec: { address: 127.0.0.31, serviceAccount: reviews, labels: { app: reviews, version: v1, security.istio.io/tlsMode: istio } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-v2, namespace: shop }
spec: { address: 127.0.0.32, serviceAccount: reviews, labels: { app: reviews, version: v2, security.istio.io/tlsMode: istio } }
---
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: shop }
spec:
  selector: { app: reviews }
  ports: [{ name: http, port: 9080, targetPort: 8080 }, { name: http-admin, port: 9090, targetPort: 8090 }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: bank, namespace: shop }
spec:
  hosts: [bank.example.com]
  resolution: DNS
  ports: [{ number: 80, name: http, protocol: HTTP, targetPort: 443 }, { number: 8443, name: https-mtls, protocol: HTTP }]
`;

const rules = `
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: shop }
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: { simple: LEAST_REQUEST }
    connectionPool:
      tcp: { maxConnections: 10, connectTimeout: 250ms }
      http: { http1MaxPendingRequests: 5, http2MaxRequests: 20, maxRequestsPerConnection: 3, maxRetries: 2, idleTimeout: 30s }
    outlierDetection: { consecutive5xxErrors: 3, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50 }
    portLevelSettings:
      - port: { number: 9090 }
        tls: { mode: DISABLE }
  subsets:
    - name: v1
      labels: { version: v1 }
      trafficPolicy: { loadBalancer: { simple: RANDOM } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: bank, namespace: shop }
spec:
  host: bank.example.com
  trafficPolicy:
    tls: { mode: SIMPLE, caCertificates: /etc/bank/ca.pem }
    portLevelSettings:
      - port: { number: 8443 }
        tls: { mode: MUTUAL, clientCertificate: /etc/bank/client.pem, privateKey: /etc/bank/client-key.pem, caCertificates: /etc/bank/ca.pem, sni: api.bank.example.com, subjectAltNames: [api.bank.example.com] }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews-canary, namespace: shop }
spec:
  host: reviews.shop.svc.cluster.local
  workloadSelector: { matchLabels: { track: canary } }
  trafficPolicy: { tls: { mode: DISABLE } }
`;

function load(yaml: string): MeshModel {
  const r = parseConfigText(yaml, 'mesh.yaml');
  assert.ok(r.model, JSON.stringify(r.diagnostics, null, 1));
  return r.model;
}

function generate(model: MeshModel, workload = 'client') {
  const ctx = new PushContext(
    {
      model,
      trustDomain: mustTrustDomain('cluster.local'),
      trustBundlePem: 'ROOT',
      crlPem: '',
      svidFor: () => ({ chainPem: 'CHAIN', keyPem: 'KEY' }),
      inboundPolicy: () => NO_POLICY,
    },
    new ResourceMemo(),
  );
  const w = model.workload('shop', workload)!;
  const view: NodeView = { nodeId: 'n', workloadKey: `shop/${workload}`, workload: w, source: {}, serveKeys: true, capture: false };
  const out = generateAll(view, ctx, new ResourceMemo());
  return <T>(codec: { decode(b: Uint8Array): T }, t: TypeUrl, name: string): T => {
    const found = out.find((x) => x.typeUrl === t && x.name === name);
    assert.ok(found, `${t} ${name} in ${out.map((x) => x.name).join(', ')}`);
    return codec.decode(Any.decode((found as EncodedResource).anyBytes()).value);
  };
}

const REVIEWS = 'reviews.shop.svc.cluster.local';

describe('DestinationRule compiled to clusters', () => {
  const model = load(mesh + rules);
  const get = generate(model);

  it('loadBalancer, connectionPool and outlierDetection set the cluster as Istio does', () => {
    const c = get(Cluster, TypeUrl.Cluster, `outbound|9080||${REVIEWS}`);
    assert.equal(c.lbPolicy, Cluster_LbPolicy.LEAST_REQUEST);
    assert.deepEqual(c.connectTimeout, { seconds: 0, nanos: 250_000_000 });
    const t = c.circuitBreakers!.thresholds[0]!;
    assert.deepEqual([t.maxConnections, t.maxPendingRequests, t.maxRequests, t.maxRetries], [10, 5, 20, 2]);
    const od = c.outlierDetection!;
    assert.deepEqual([od.consecutive5xx, od.enforcingConsecutive5xx, od.enforcingConsecutiveGatewayFailure], [3, 100, 0]);
    assert.deepEqual([od.interval?.seconds, od.baseEjectionTime?.seconds, od.maxEjectionPercent], [10, 30, 50]);
    assert.ok(
      c.typedExtensionProtocolOptions['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'],
      'idle timeout and requests per connection',
    );
    // No tls in the rule: auto mTLS still applies.
    assert.ok(c.transportSocket, 'auto mTLS toward the sidecars');
  });

  it('portLevelSettings override the rule for their port: DISABLE is plaintext even toward sidecars', () => {
    const c = get(Cluster, TypeUrl.Cluster, `outbound|9090||${REVIEWS}`);
    assert.equal(c.transportSocket, undefined);
    assert.equal(c.transportSocketMatches.length, 0);
    assert.equal(c.lbPolicy, Cluster_LbPolicy.LEAST_REQUEST, 'the rule-level settings still apply');
  });

  it('a subset gets its own cluster outbound|port|subset|host with only its endpoints and its own policy', () => {
    const c = get(Cluster, TypeUrl.Cluster, `outbound|9080|v1|${REVIEWS}`);
    assert.equal(c.lbPolicy, Cluster_LbPolicy.RANDOM);
    assert.ok(c.circuitBreakers, 'the rule-level connection pool applies to the subset too');
    const cla = get(ClusterLoadAssignment, TypeUrl.ClusterLoadAssignment, `outbound|9080|v1|${REVIEWS}`);
    assert.deepEqual(
      cla.endpoints[0]!.lbEndpoints.map((e) => e.endpoint!.address!.socketAddress!.address),
      ['127.0.0.31'],
    );
  });

  it('SIMPLE originates TLS: SNI and SAN are the host, the server is checked against caCertificates', () => {
    const c = get(Cluster, TypeUrl.Cluster, 'outbound|80||bank.example.com');
    const tls = UpstreamTlsContext.decode(c.transportSocket!.typedConfig!.value);
    assert.equal(tls.sni, 'bank.example.com');
    const vc = tls.commonTlsContext!.validationContext!;
    assert.equal(vc.trustedCa!.filename, '/etc/bank/ca.pem');
    assert.deepEqual(
      vc.matchTypedSubjectAltNames.map((m) => m.matcher!.exact),
      ['bank.example.com'],
    );
    assert.equal(tls.commonTlsContext!.tlsCertificates.length, 0);
    assert.equal(tls.commonTlsContext!.tlsCertificateSdsSecretConfigs.length, 0, 'no mesh certificate to the outside');
  });

  it('MUTUAL presents the client certificate and key from files, with the rule’s SNI and SANs', () => {
    const c = get(Cluster, TypeUrl.Cluster, 'outbound|8443||bank.example.com');
    const tls = UpstreamTlsContext.decode(c.transportSocket!.typedConfig!.value);
    assert.equal(tls.sni, 'api.bank.example.com');
    const cert = tls.commonTlsContext!.tlsCertificates[0]!;
    assert.equal(cert.certificateChain!.filename, '/etc/bank/client.pem');
    assert.equal(cert.privateKey!.filename, '/etc/bank/client-key.pem');
  });

  it('a rule with a workloadSelector applies only to the sidecars it selects', () => {
    const canary = generate(model, 'client-canary');
    assert.equal(canary(Cluster, TypeUrl.Cluster, `outbound|9080||${REVIEWS}`).transportSocket, undefined, 'DISABLE for the canary');
    assert.ok(get(Cluster, TypeUrl.Cluster, `outbound|9080||${REVIEWS}`).transportSocket, 'auto mTLS for the others');
  });

  it('ISTIO_MUTUAL toward a host outside the mesh uses the mesh certificate', () => {
    const m = load(
      mesh +
        `
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: bank, namespace: shop }
spec:
  host: bank.example.com
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }
`,
    );
    const c = generate(m)(Cluster, TypeUrl.Cluster, 'outbound|80||bank.example.com');
    const tls = UpstreamTlsContext.decode(c.transportSocket!.typedConfig!.value);
    assert.equal(tls.commonTlsContext!.tlsCertificateSdsSecretConfigs[0]!.name, 'default');
  });
});
