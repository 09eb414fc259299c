// A fault: the CA's state directory vanishes while meshpilot runs. Nothing crashes,
// proxies already served keep their config and certificates and their traffic flows,
// and what can no longer be done (issuing for a new workload) fails with a clear error.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './harness/index.js';
import { startMesh, type TestMesh } from './kit/mesh.js';
import { backend, backendHost, datastore, frontend, photoAppConfig } from './kit/photo-app.js';

describe('state directory lost while running', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-state-loss-'));
  const stateDir = join(dir, 'state');
  let mesh: TestMesh;

  before(async () => {
    mesh = await startMesh({ 'mesh.yaml': photoAppConfig() }, { stateDir, apps: [frontend, backend] });
    await mesh.startSidecar(frontend);
    await mesh.startSidecar(backend);
  });
  afterEach(function () {
    mesh.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps serving existing proxies and refuses new issuance with an error naming the file', async () => {
    assert.equal((await mesh.call(frontend, backendHost)).status, 200);
    rmSync(stateDir, { recursive: true, force: true });
    // A new workload needs an SVID, which cannot be recorded any more: it is not issued.
    const ds = await mesh.startSidecar(datastore, { waitReady: false });
    const line = await eventually(
      () => mesh.logLines.find((l) => l.msg === 'svid not issued' && String(l.fields.workload) === 'datastore-ns/datastore') ?? false,
      {
        description: 'the refusal to issue',
      },
    );
    assert.match(String(line.fields.cause), new RegExp(stateDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    assert.equal(await ds.stat('listener_manager.total_listeners_active'), 0, 'no half-configured sidecar: it got no listeners');
    // The running mesh is untouched.
    for (let i = 0; i < 20; i++) assert.equal((await mesh.call(frontend, backendHost)).status, 200);
    assert.ok(mesh.mp.xds.connected().length >= 3, 'the control plane still serves every stream');
  });
});
