import assert from 'node:assert/strict';
import { sidecarBootstrap, XDS_CLUSTER } from './sidecar-bootstrap.js';

const base = {
  nodeId: 'sidecar~127.0.0.11~photo-frontend.photo-ns~photo-ns.svc.cluster.local',
  cluster: 'photo-frontend',
  xdsHost: '127.0.0.1',
  xdsPort: 15012,
  tls: { rootCaPem: 'ROOT', controlPlaneId: 'spiffe://cluster.local/ns/istio-system/sa/meshpilot' },
};
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Envoy's JSON, read ad hoc
const xdsTls = (b: Record<string, any>) =>
  b.static_resources.clusters.find((c: { name: string }) => c.name === XDS_CLUSTER).transport_socket.typed_config.common_tls_context;

describe('sidecar bootstrap credential', () => {
  it('with a cert dir and no token: the SVID in the files is the client certificate toward the control plane, reloaded from the watched directory', () => {
    const b = sidecarBootstrap({ ...base, certDir: '/run/creds/frontend' });
    assert.deepEqual(xdsTls(b).tls_certificate_sds_secret_configs, [
      {
        name: 'default',
        sds_config: {
          path_config_source: { path: '/run/creds/frontend/default-sds.yaml', watched_directory: { path: '/run/creds/frontend' } },
          resource_api_version: 'V3',
        },
      },
    ]);
    assert.ok(!JSON.stringify(b).includes('authorization'), 'no token metadata');
    // The control plane is still pinned by SPIFFE ID.
    assert.deepEqual(xdsTls(b).validation_context.match_typed_subject_alt_names, [
      { san_type: 'URI', matcher: { exact: base.tls.controlPlaneId } },
    ]);
  });
  it('with a token: the token is the credential and no client certificate is sent', () => {
    const b = sidecarBootstrap({ ...base, token: 'T' });
    assert.equal(xdsTls(b).tls_certificate_sds_secret_configs, undefined);
    assert.match(JSON.stringify(b), /Bearer T/);
  });
});
