// The development mode: plaintext, unauthenticated xDS. Off by default, loud when on
// (at start and on every stream), and it never serves a private key: sidecars then talk
// plaintext to each other.
import assert from 'node:assert/strict';
import { startMesh, type TestMesh } from './kit/mesh.js';
import { backend, backendHost, frontend, photoAppConfig } from './kit/photo-app.js';

describe('plaintext development mode with real Envoy', function () {
  this.timeout(60_000);
  let mesh: TestMesh;

  before(async () => {
    mesh = await startMesh({ 'mesh.yaml': photoAppConfig() }, { insecurePlaintext: true, apps: [frontend, backend] });
    await mesh.startSidecar(frontend);
    await mesh.startSidecar(backend);
  });
  afterEach(function () {
    mesh.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
  });

  it('warns at start and on every stream, serves no keys, and the sidecars talk plaintext', async () => {
    assert.equal(mesh.mp.secure, false);
    assert.ok(mesh.logLines.some((l) => l.level === 'warn' && l.msg.startsWith('xds served in plaintext without authentication')));
    assert.equal(mesh.logLines.filter((l) => l.level === 'warn' && l.msg === 'unauthenticated plaintext stream').length, 2);
    const res = await mesh.call(frontend, backendHost);
    assert.equal(res.status, 200);
    assert.equal(
      (res.json as { headers: Record<string, string> }).headers['x-forwarded-client-cert'],
      undefined,
      'no client certificate: plaintext',
    );
    for (const e of mesh.envoys.envoys) {
      const secrets = JSON.stringify(await e.configDump('resource=dynamic_active_secrets'));
      assert.ok(!secrets.includes('"name":"default"'), `${e.name} holds no SVID`);
    }
  });
});
