// `meshpilot serve --config-store etcd` when etcd cannot be reached at start: it stops with an
// error naming the endpoints, or, with --allow-stale-start, serves the config it cached on its
// last run, says so, and catches up once etcd answers. Also: a corrupted object in the store
// is skipped with its key named and counted, and never stops a replica.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdFlags, startEtcdCluster, type EtcdCluster } from '../src/store/etcd-kit.js';
import { eventually } from './harness/index.js';
import { DENY_FRONTEND_TO_BACKEND, photoAppConfig, photoAppPolicy } from './kit/photo-app.js';
import { logEntries, runMeshpilot, startMeshpilotProcess } from './kit/processes.js';
import { applyConfig, prepareReplicas, type Replica } from './kit/replicas.js';

describe('serve --config-store etcd: etcd unreachable at start, stale start, corrupted objects', function () {
  this.timeout(180_000);
  let cluster: EtcdCluster;
  let dir: string;
  let replica: Replica;

  before(async () => {
    cluster = await startEtcdCluster({ members: 1 });
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-config-store-start-'));
    const configDir = join(dir, 'config');
    mkdirSync(configDir);
    writeFileSync(join(configDir, 'mesh.yaml'), photoAppConfig());
    writeFileSync(join(configDir, 'policy.yaml'), photoAppPolicy());
    await applyConfig(cluster, [configDir]);
    [replica] = await prepareReplicas({ dir, names: ['a'], cluster });
    runMeshpilot(['ca', 'init', '--state-dir', replica!.stateDir]);
  });
  after(async () => {
    await replica?.current()?.stop('SIGKILL');
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('skips a corrupted object, naming its key, and keeps serving', async () => {
    await replica.start();
    try {
      await corruptedObjectsAreSkipped();
    } finally {
      // Stopped even when an assertion failed: the next test needs the state directory (its lock).
      if (replica.current().proc.exitCode === null) await replica.current().stop('SIGTERM');
    }
  });

  const corruptedObjectsAreSkipped = async () => {
    const c = cluster.client();
    try {
      await c.put('/meshpilot/config/AuthorizationPolicy/photo-ns/broken').value('apiVersion: security.istio.io/v1\nkind: [');
      await c.put('/meshpilot/config/not-ours').value('hello');
    } finally {
      c.close();
    }
    await eventually(async () => (await replica.metric('meshpilot_config_store_skipped_objects')) === 2, {
      description: 'two objects skipped',
    });
    // The child's log reaches this process after its metric may already count both: wait for the lines.
    const skippedKeys = () =>
      logEntries(replica.current().lines())
        .filter((l) => l.msg === 'config object skipped')
        .map((l) => String(l.key));
    const wanted = ['etcd:/meshpilot/config/AuthorizationPolicy/photo-ns/broken', 'etcd:/meshpilot/config/not-ours'];
    await eventually(
      () => {
        const have = skippedKeys();
        if (!wanted.every((k) => have.includes(k))) throw new Error(`named so far: ${have.join(', ') || 'none'}`);
        return true;
      },
      { description: "both keys named in 'config object skipped' lines" },
    );
    assert.equal(replica.current().proc.exitCode, null, 'still running');
    const cc = cluster.client();
    try {
      await cc.delete().key('/meshpilot/config/AuthorizationPolicy/photo-ns/broken');
      await cc.delete().key('/meshpilot/config/not-ours');
    } finally {
      cc.close();
    }
  };

  it('stops with an error naming the endpoints when etcd is down, or serves the cached config with --allow-stale-start', async () => {
    await cluster.kill(0);
    const flags = etcdFlags(cluster);
    const refused = startMeshpilotProcess('refused', [
      'serve',
      '--config-store',
      'etcd',
      ...flags,
      '--state-dir',
      replica.stateDir,
      '--xds-address',
      '127.0.0.1:0',
      '--admin-port',
      '0',
    ]);
    const exit = await refused.exited;
    assert.notEqual(exit.code, 0);
    assert.match(refused.logs(), new RegExp(`the config store cannot be reached: etcd at ${cluster.endpoints[0]!.replace(/\./g, '\\.')}`));
    assert.match(refused.logs(), /--allow-stale-start serves the last config cached in .*config-cache\.json/);

    // The same replica, allowed to start from what it cached on its last run.
    const stale = await prepareReplicas({
      dir: join(dir, 'stale'),
      names: ['a'],
      cluster,
      extraArgs: ['--allow-stale-start', '--config-cache', join(replica.stateDir, 'config-cache.json')],
    });
    runMeshpilot(['ca', 'init', '--state-dir', stale[0]!.stateDir]);
    const r = stale[0]!;
    try {
      await r.start();
      assert.equal(await r.metric('meshpilot_config_store_connected'), 0);
      assert.ok(logEntries(r.current().lines()).some((l) => l.msg === 'config store unreachable at start: serving the cached config'));
      const accepted = logEntries(r.current().lines()).find((l) => l.msg === 'config accepted');
      assert.ok(accepted, 'the cached config was accepted');
      // etcd comes back with a change: the replica catches up.
      await cluster.restart(0);
      await eventually(async () => (await r.metric('meshpilot_config_store_connected')) === 1, {
        timeoutMs: 30_000,
        description: 'connected',
      });
      const p = join(dir, 'deny.yaml');
      writeFileSync(p, DENY_FRONTEND_TO_BACKEND);
      await applyConfig(cluster, [p]);
      await eventually(() => logEntries(r.current().lines()).filter((l) => l.msg === 'config accepted').length >= 2, {
        timeoutMs: 30_000,
        description: 'the change after the stale start',
      });
    } finally {
      await r.current()?.stop('SIGKILL');
    }
  });
});
