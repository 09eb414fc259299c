import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseConfigText } from '../config/index.js';
import { mustTrustDomain } from '../identity/index.js';
import {
  Any,
  Cluster,
  ClusterLoadAssignment,
  Listener,
  Secret,
  SPIFFECertValidatorConfig,
  TypeUrl,
  UpstreamTlsContext,
} from '../proto/index.js';
import type { EncodedResource } from '../snapshot/index.js';
import { generateAll, NO_POLICY, PushContext, ResourceMemo, type SecretSource } from './index.js';

const photo = readFileSync(fileURLToPath(new URL('../../../examples/photo-app/mesh.yaml', import.meta.url)), 'utf8');
// A second photo-backend workload running as another service account, and one without a sidecar.
const extra = `
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: photo-backend-canary, namespace: photo-ns }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: photo-backend-canary, namespace: photo-ns }
spec:
  address: 127.0.0.16
  serviceAccount: photo-backend-canary
  labels: { app: photo-backend, security.istio.io/tlsMode: istio }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: photo-backend-legacy, namespace: photo-ns }
spec:
  address: 127.0.0.17
  serviceAccount: photo-backend
  labels: { app: photo-backend }
`;

function generate(
  yaml: string,
  workload = 'photo-frontend',
  ns = 'photo-ns',
  source: SecretSource = {},
  foreignBundles: readonly { trustDomain: string; pem: string }[] = [],
) {
  const r = parseConfigText(yaml, 'mesh.yaml');
  assert.ok(r.model, JSON.stringify(r.diagnostics));
  const model = r.model;
  const ctx = new PushContext(
    {
      model,
      trustDomain: mustTrustDomain('cluster.local'),
      trustBundlePem: 'ROOT',
      crlPem: foreignBundles.length > 0 ? 'CRL' : '',
      foreignBundles,
      svidFor: () => ({ chainPem: 'CHAIN', keyPem: 'KEY' }),
      inboundPolicy: () => NO_POLICY,
    },
    new ResourceMemo(),
  );
  const w = model.workload(ns, workload)!;
  const view = { nodeId: 'n', workloadKey: `${ns}/${workload}`, workload: w, source, serveKeys: true, capture: false };
  const out = generateAll(view, ctx, new ResourceMemo());
  const get = (t: TypeUrl, name: string): EncodedResource => {
    const found = out.find((x) => x.typeUrl === t && x.name === name);
    assert.ok(found, `${t} ${name} in ${out.map((x) => x.name).join(', ')}`);
    return found;
  };
  return { out, get };
}

describe('sidecar generator', () => {
  it('names resources as Istio does', () => {
    const { out } = generate(photo);
    const names = out.map((r) => `${r.typeUrl.split('.').pop()} ${r.name}`);
    for (const n of [
      'Secret default',
      'Secret ROOTCA',
      'Listener inbound|9080',
      'Cluster inbound|8080||',
      'Cluster outbound|9080||photo-backend.photo-ns.svc.cluster.local',
      'ClusterLoadAssignment outbound|9080||datastore.datastore-ns.svc.cluster.local',
      'Listener outbound_http',
      'RouteConfiguration outbound_http',
    ])
      assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
  });

  it('lists exactly the service accounts that run a service in its SAN matcher (secure naming)', () => {
    const { get } = generate(photo + extra);
    const cluster = decodeAny(Cluster, get(TypeUrl.Cluster, 'outbound|9080||photo-backend.photo-ns.svc.cluster.local'));
    // Mixed sidecar / no sidecar: TLS only toward the endpoints that run one.
    const tls = cluster.transportSocketMatches.find((m) => m.name === 'tlsMode-istio')!.transportSocket!.typedConfig!;
    const ctx = UpstreamTlsContext.decode(tls.value);
    const sans = ctx.commonTlsContext!.combinedValidationContext!.defaultValidationContext!.matchTypedSubjectAltNames.map(
      (m) => m.matcher!.exact,
    );
    assert.deepEqual(sans, [
      'spiffe://cluster.local/ns/photo-ns/sa/photo-backend',
      'spiffe://cluster.local/ns/photo-ns/sa/photo-backend-canary',
    ]);
    assert.equal(ctx.sni, 'outbound_.9080_._.photo-backend.photo-ns.svc.cluster.local');
  });

  it('sends sidecar endpoints to the service port and others to their app port, marked for auto mTLS', () => {
    const { get } = generate(photo + extra);
    const cla = decodeAny(
      ClusterLoadAssignment,
      get(TypeUrl.ClusterLoadAssignment, 'outbound|9080||photo-backend.photo-ns.svc.cluster.local'),
    );
    const eps = cla.endpoints[0]!.lbEndpoints.map((e) => ({
      at: `${e.endpoint!.address!.socketAddress!.address}:${e.endpoint!.address!.socketAddress!.portValue}`,
      tls: (e.metadata!.filterMetadata['envoy.transport_socket_match'] as { tlsMode: string }).tlsMode,
    }));
    assert.deepEqual(eps, [
      { at: '127.0.0.12:9080', tls: 'istio' },
      { at: '127.0.0.16:9080', tls: 'istio' },
      { at: '127.0.0.17:8080', tls: 'disabled' },
    ]);
  });

  it('binds the inbound listener on the workload address and the service port, requiring a client certificate', () => {
    const { get } = generate(photo, 'photo-backend');
    const l = decodeAny(Listener, get(TypeUrl.Listener, 'inbound|9080'));
    assert.equal(l.address!.socketAddress!.address, '127.0.0.12');
    assert.equal(l.address!.socketAddress!.portValue, 9080);
    // PERMISSIVE when no PeerAuthentication applies: TLS inspection and two chains.
    assert.deepEqual(
      l.filterChains.map((c) => c.filterChainMatch?.transportProtocol),
      ['tls', 'raw_buffer'],
    );
  });

  it('with federated trust domains, ROOTCA uses the SPIFFE validator: one bundle per trust domain, the CRL in our own', () => {
    const { get } = generate(photo, 'photo-frontend', 'photo-ns', {}, [{ trustDomain: 'b.example', pem: 'B-ROOTS' }]);
    const r = decodeAny(Secret, get(TypeUrl.Secret, 'ROOTCA'));
    const vc = r.validationContext!;
    assert.equal(vc.trustedCa, undefined, 'no mesh-wide trusted_ca: every root is scoped to its trust domain');
    assert.equal(vc.customValidatorConfig!.name, 'envoy.tls.cert_validator.spiffe');
    const cfg = SPIFFECertValidatorConfig.decode(vc.customValidatorConfig!.typedConfig!.value);
    assert.deepEqual(
      cfg.trustDomains.map((d) => [d.name, d.trustBundle!.inlineString]),
      [
        ['cluster.local', 'ROOTCRL'],
        ['b.example', 'B-ROOTS'],
      ],
    );
  });

  it('carries the SVID and the trust bundle in the SDS secrets', () => {
    const { get } = generate(photo);
    const d = decodeAny(Secret, get(TypeUrl.Secret, 'default'));
    assert.equal(d.tlsCertificate!.certificateChain!.inlineString, 'CHAIN');
    const r = decodeAny(Secret, get(TypeUrl.Secret, 'ROOTCA'));
    assert.equal(r.validationContext!.trustedCa!.inlineString, 'ROOT');
  });

  it('points `default` at the certificate directory through file-based SDS, keeps ROOTCA on ADS, and sends no key', () => {
    const certDir = '/var/run/secrets/meshpilot/photo-ns/photo-frontend';
    const { out, get } = generate(photo, 'photo-frontend', 'photo-ns', { certDir });
    assert.ok(!out.some((r) => r.typeUrl === TypeUrl.Secret && r.name === 'default'), 'no default secret over xDS');
    const c = decodeAny(Cluster, get(TypeUrl.Cluster, 'outbound|9080||photo-backend.photo-ns.svc.cluster.local'));
    const tls = UpstreamTlsContext.decode(c.transportSocket!.typedConfig!.value);
    const sds = tls.commonTlsContext!.tlsCertificateSdsSecretConfigs[0]!;
    assert.equal(sds.name, 'default');
    assert.deepEqual(sds.sdsConfig!.pathConfigSource, { path: `${certDir}/default-sds.yaml`, watchedDirectory: { path: certDir } });
    const rootca = tls.commonTlsContext!.combinedValidationContext!.validationContextSdsSecretConfig!;
    assert.equal(rootca.name, 'ROOTCA');
    assert.ok(rootca.sdsConfig!.ads, 'ROOTCA (with the CRL) still over ADS');
  });
});

/** Decodes a resource's payload (the value of its google.protobuf.Any) with its generated codec. */
function decodeAny<T>(codec: { decode(b: Uint8Array): T }, r: EncodedResource): T {
  return codec.decode(Any.decode(r.anyBytes()).value);
}
