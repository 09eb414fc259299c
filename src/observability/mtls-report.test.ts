import assert from 'node:assert/strict';
import { Any, Cluster, packAny, SubjectAltNameMatcher_SanType, UpstreamTlsContext } from '../proto/index.js';
import { buildMtlsReport, decodeClusterTls, formatMtlsReport, type MtlsReportDeps, type PushedCluster } from './mtls-report.js';

const FRONT = 'spiffe://cluster.local/ns/photo-ns/sa/photo-frontend';
const BACK = 'spiffe://cluster.local/ns/photo-ns/sa/photo-backend';
const HOST = 'photo-backend.photo-ns.svc.cluster.local';
const CLUSTER = `outbound|9080||${HOST}`;

function clusterAny(sans: readonly string[] | undefined): Uint8Array {
  const c = Cluster.fromPartial({
    name: CLUSTER,
    ...(sans
      ? {
          transportSocket: {
            name: 'envoy.transport_sockets.tls',
            typedConfig: packAny('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', UpstreamTlsContext, {
              commonTlsContext: {
                combinedValidationContext: {
                  defaultValidationContext: {
                    matchTypedSubjectAltNames: sans.map((s) => ({ sanType: SubjectAltNameMatcher_SanType.URI, matcher: { exact: s } })),
                  },
                },
              },
            }),
          },
        }
      : {}),
  });
  return Any.encode({
    typeUrl: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
    value: Buffer.from(Cluster.encode(c).finish()),
  }).finish();
}

function deps(over: Partial<MtlsReportDeps> & { pushed?: PushedCluster | undefined } = {}): MtlsReportDeps {
  return {
    clients: () => [{ workload: 'photo-ns/photo-frontend', nodeId: 'front' }],
    services: () => [
      {
        host: HOST,
        port: 9080,
        cluster: CLUSTER,
        expectedIds: [BACK],
        servers: [{ workload: 'photo-ns/photo-backend', mode: 'STRICT', nodeId: 'back', sidecar: true }],
      },
    ],
    pushedCluster: () => ('pushed' in over ? over.pushed : { tls: true, sans: [BACK] }),
    currentVersion: (n, t) => `${n}-${t}-2`,
    ackedVersion: (n, t) => `${n}-${t}-2`,
    svidOf: () => ({ serialHex: 'ab12', notAfter: 2_000 }),
    now: () => 1_000,
    ...over,
  };
}

describe('mtls report', () => {
  it('decodes the SAN matcher and TLS mode of a pushed cluster', () => {
    assert.deepEqual(decodeClusterTls(clusterAny([BACK])), { tls: true, sans: [BACK] });
    assert.deepEqual(decodeClusterTls(clusterAny(undefined)), { tls: false, sans: [] });
  });

  it('tells a DestinationRule’s TLS origination from mesh mTLS, and flags it toward a STRICT server', () => {
    const c = Cluster.fromPartial({
      name: CLUSTER,
      transportSocket: {
        name: 'envoy.transport_sockets.tls',
        typedConfig: packAny('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', UpstreamTlsContext, {
          sni: HOST,
          commonTlsContext: { validationContext: { trustedCa: { filename: '/etc/ca.pem' } } },
        }),
      },
    });
    const bytes = Any.encode({
      typeUrl: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
      value: Buffer.from(Cluster.encode(c).finish()),
    }).finish();
    const pushed = decodeClusterTls(bytes);
    assert.deepEqual(pushed, { tls: true, sans: [], origination: true });
    const [row] = buildMtlsReport(deps({ pushed }));
    assert.equal(row!.clientTls, 'TLS origination');
    assert.ok(
      row!.problems.some((p) => p.includes('toward a STRICT server')),
      row!.problems.join('; '),
    );
  });

  it('a pair whose expected, pushed and ACKed state agree has no problems', () => {
    const rows = buildMtlsReport(deps());
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0]!.problems, []);
    assert.equal(rows[0]!.clientTls, 'auto mTLS');
    assert.match(formatMtlsReport(rows), /^OK {3}photo-ns\/photo-frontend -> photo-backend\.photo-ns\.svc\.cluster\.local:9080\n/);
  });

  it('flags a SAN list that differs from the expected IDs', () => {
    const [r] = buildMtlsReport(deps({ pushed: { tls: true, sans: [BACK, FRONT] } }));
    assert.deepEqual(r!.problems, [`pushed SANs [${BACK}, ${FRONT}] differ from expected [${BACK}]`]);
  });

  it('flags pushed but not ACKed, on either side', () => {
    const [r] = buildMtlsReport(deps({ ackedVersion: (n, t) => `${n}-${t}-1` }));
    assert.deepEqual(r!.problems, ['client has not ACKed its current CDS', 'server photo-ns/photo-backend has not ACKed its current SDS']);
  });

  it('flags plaintext toward a STRICT server, a server without a current SVID, and a missing cluster', () => {
    assert.deepEqual(buildMtlsReport(deps({ pushed: { tls: false, sans: [] } }))[0]!.problems, ['plaintext toward a STRICT server']);
    assert.deepEqual(buildMtlsReport(deps({ svidOf: () => ({ serialHex: 'ab', notAfter: 500 }) }))[0]!.problems, [
      'server photo-ns/photo-backend has no current SVID',
    ]);
    assert.deepEqual(buildMtlsReport(deps({ pushed: undefined }))[0]!.problems, [`no cluster ${CLUSTER} pushed`]);
  });

  it('filters by client workload and by service', () => {
    assert.equal(buildMtlsReport(deps(), { from: 'photo-ns/other' }).length, 0);
    assert.equal(buildMtlsReport(deps(), { to: 'photo-backend.photo-ns' }).length, 1);
    assert.equal(buildMtlsReport(deps(), { to: 'datastore' }).length, 0);
  });
});
