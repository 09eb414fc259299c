// Who may ask for what, with real Envoy: identity comes from the credential, never from
// what the proxy claims; a proxy gets only its own secrets.
import assert from 'node:assert/strict';
import { XDS_CLUSTER } from '../src/bootstrap/index.js';
import { eventually } from './harness/index.js';
import { nodeIdOf, startMesh, type TestMesh } from './kit/mesh.js';
import { backend, backendHost, datastore, frontend, ids, photoAppConfig } from './kit/photo-app.js';

describe('authenticated xDS with real Envoy (issue 6)', function () {
  this.timeout(90_000);
  let mesh: TestMesh;

  before(async () => {
    mesh = await startMesh({ 'mesh.yaml': photoAppConfig() }, { apps: [frontend, backend] });
    await mesh.startSidecar(backend);
  });
  afterEach(function () {
    mesh.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
  });

  it('refuses an Envoy whose token is for photo-frontend but whose node id claims datastore', async () => {
    const token = await mesh.mp.mintToken('photo-ns', 'photo-frontend');
    const liar = await mesh.startSidecar(datastore, { token, waitReady: false, name: 'liar' });
    const refusal = await eventually(
      () => mesh.logLines.find((l) => l.msg === 'stream refused' && String(l.fields.reason).includes(ids.frontend)) ?? false,
      { description: 'the refusal in the control plane log' },
    );
    assert.match(String(refusal.fields.reason), /does not run workload datastore-ns\/datastore/);
    // Nothing of datastore's reached it: no listeners, no clusters, no secrets.
    const dump = JSON.stringify(await liar.configDump());
    assert.ok(!dump.includes('dynamic_active_listeners'), 'no listeners');
    assert.ok(!dump.includes('dynamic_active_secrets') && !dump.includes('dynamic_warming_secrets'), 'no secret');
    // Envoy never accepted any config (its connection state flickers while it retries, so count updates instead).
    assert.equal((await liar.stat('cluster_manager.cds.update_success')) ?? 0, 0);
    assert.equal((await liar.stat('listener_manager.lds.update_success')) ?? 0, 0);
    await liar.stop();
  });

  it('refuses an Envoy with no credential, and one with a token signed by another key', async () => {
    const none = await mesh.startSidecar(frontend, { token: '', waitReady: false, name: 'no-token' });
    await eventually(() => mesh.logLines.some((l) => l.msg === 'stream refused' && l.fields.kind === 'no-credential'), {
      description: 'no-credential refusal',
    });
    await none.stop();
    const forged = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cGhvdG8tbnM6cGhvdG8tZnJvbnRlbmQifQ.AAAA';
    const bad = await mesh.startSidecar(frontend, { token: forged, waitReady: false, name: 'forged-token' });
    await eventually(() => mesh.logLines.some((l) => l.msg === 'stream refused' && l.fields.kind === 'bad-token'), {
      description: 'bad-token refusal',
    });
    assert.equal((await bad.stat('cluster_manager.cds.update_success')) ?? 0, 0);
    await bad.stop();
  });

  it('serves a proxy only its own secrets: asking for another identity’s is refused and logged, and its own keep working', async () => {
    const token = await mesh.mp.mintToken('photo-ns', 'photo-frontend');
    const bootstrap = await mesh.bootstrapFor(frontend, { token });
    // A static cluster in the bootstrap that asks the control plane, over ADS, for datastore's secret.
    const statics = bootstrap.static_resources as { clusters: object[] };
    statics.clusters.push({
      name: 'steal',
      type: 'STATIC',
      connect_timeout: '1s',
      load_assignment: { cluster_name: 'steal', endpoints: [] },
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
          // Over the per-type SDS service on the control plane, with the proxy's own token.
          common_tls_context: {
            tls_certificate_sds_secret_configs: [
              {
                name: ids.datastore,
                sds_config: {
                  resource_api_version: 'V3',
                  // Envoy waits for this secret before it goes on to its own config; never arriving, it would hold it 15 s.
                  initial_fetch_timeout: '1s',
                  api_config_source: {
                    api_type: 'GRPC',
                    transport_api_version: 'V3',
                    grpc_services: [
                      { envoy_grpc: { cluster_name: XDS_CLUSTER }, initial_metadata: [{ key: 'authorization', value: `Bearer ${token}` }] },
                    ],
                  },
                },
              },
            ],
          },
        },
      },
    });
    const fe = await mesh.envoys.start({ name: 'frontend-thief', bootstrap, waitReady: false });
    const refused = await eventually(
      () => mesh.logLines.find((l) => l.msg === 'secret request refused' && l.fields.node === nodeIdOf(frontend)) ?? false,
      {
        description: 'the refused secret request in the log',
      },
    );
    assert.deepEqual(refused.fields.names, [ids.datastore]);
    assert.equal(refused.fields.identity, ids.frontend);
    // Its own config and secrets still arrive and work.
    const res = await eventually(() => mesh.call(frontend, backendHost).then((r) => (r.status === 200 ? r : false)), {
      description: 'frontend → backend',
    });
    assert.equal(res.status, 200);
    const secrets = JSON.stringify(await fe.configDump('resource=dynamic_active_secrets'));
    assert.ok(!secrets.includes(ids.datastore), 'datastore’s secret never reached it');
    await fe.stop();
  });
});
