// meshpilot apply, get and delete against a real etcd (one member, TLS with client certificates).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { etcdFlags, startEtcdCluster, type EtcdCluster } from '../store/etcd-kit.js';
import { registerConfigStoreCommands } from './config-store-commands.js';
import { runCli } from './testing.js';

const photo = fileURLToPath(new URL('../../../examples/photo-app/', import.meta.url));

describe('cli: meshpilot apply / get / delete on etcd', function () {
  this.timeout(60_000);
  let cluster: EtcdCluster;
  let dir: string;
  before(async () => {
    cluster = await startEtcdCluster({ members: 1 });
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-apply-'));
  });
  after(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const etcd = () => etcdFlags(cluster);
  const run = (...args: string[]) => runCli((p, io) => registerConfigStoreCommands(p, io), ...args, ...etcd());

  it('applies a directory, one key per object, and re-applying changes nothing', async () => {
    const r = await run('apply', '-f', photo);
    assert.equal(r.exitCode, 0, r.err);
    assert.match(r.out, /^AuthorizationPolicy\/photo-ns\/photo-backend-allow-frontend created$/m);
    assert.match(r.out, /^WorkloadEntry\/photo-ns\/photo-frontend created$/m);
    const again = await run('apply', '-f', photo);
    assert.equal(again.exitCode, 0, again.err);
    assert.doesNotMatch(again.out, /created|configured/);
    assert.match(again.out, /photo-frontend unchanged/);
  });

  it('prints no TLS ServerName warning from the real binary when the etcd endpoints are IP addresses', () => {
    // grpc-js sets SNI to the endpoint's IP address and Node warns (DEP0123); bin.ts drops that one warning.
    const bin = fileURLToPath(new URL('./bin.js', import.meta.url));
    const r = spawnSync(process.execPath, [bin, 'get', 'serviceaccounts', '-n', 'photo-ns', ...etcd()], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(cluster.endpoints[0]!, /^https:\/\/127\.0\.0\.1:/);
    assert.doesNotMatch(r.stderr, /DeprecationWarning|DEP0123/);
    assert.match(r.stdout, /photo-frontend/);
  });

  it('gets a table, names, and one object as the YAML it was applied from', async () => {
    const t = await run('get', 'authorizationpolicies', '-n', 'photo-ns');
    assert.equal(t.exitCode, 0, t.err);
    assert.match(t.out, /^NAMESPACE\s+NAME\s+REVISION\s+APPLIED FROM$/m);
    assert.match(t.out, /^photo-ns\s+photo-backend-allow-frontend\s+\d+\s+.*policy\.yaml:\d+$/m);
    const y = await run('get', 'AuthorizationPolicy', 'photo-backend-allow-frontend');
    assert.match(y.out, /^# meshpilot apply: .*policy\.yaml:\d+\napiVersion: security\.istio\.io\/v1\nkind: AuthorizationPolicy/);
    const missing = await run('get', 'serviceaccount', 'nobody');
    assert.equal(missing.exitCode, 1);
    assert.match(missing.err, /no ServiceAccount named nobody/);
    await assert.rejects(run('get', 'deployment'), /KIND: unknown kind "deployment"/);
  });

  it('refuses a file that does not load, with file:line, and writes nothing', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: photo-ns\nspec:\n  action: ALLOW\n  rules:\n    - from:\n        - source:\n            princpals: [x]\n',
    );
    const r = await run('apply', '-f', bad);
    assert.equal(r.exitCode, 1);
    assert.match(r.err, new RegExp(`error: ${bad}:11:\\d+: spec\\.rules\\[0\\]\\.from\\[0\\]\\.source\\.princpals`));
    assert.match(r.err, /refused: nothing was written/);
    const g = await run('get', 'authorizationpolicy', 'p', '-n', 'photo-ns');
    assert.equal(g.exitCode, 1, 'the refused object never reached the store');
  });

  it('refuses to delete an object the rest still needs, deletes one it does not', async () => {
    const r = await run('delete', 'serviceaccount', 'photo-backend', '-n', 'photo-ns');
    assert.equal(r.exitCode, 1);
    assert.match(r.err, /etcd:\/meshpilot\/config\/WorkloadEntry\/photo-ns\/photo-backend/);
    const d = await run('delete', 'authorizationpolicy', 'photo-backend-allow-frontend', '-n', 'photo-ns');
    assert.equal(d.exitCode, 0, d.err);
    assert.match(d.out, /AuthorizationPolicy\/photo-ns\/photo-backend-allow-frontend deleted/);
  });

  it('says which endpoints it cannot reach, and refuses a client certificate etcd does not trust', async () => {
    const foreign = cluster.foreignClientTls();
    const r = await runCli((p, io) => registerConfigStoreCommands(p, io), 'get', 'service', ...etcdFlags(cluster, { tls: foreign })).then(
      () => 'no error',
      (e: Error) => e.message,
    );
    assert.match(r, new RegExp(`etcd at ${cluster.endpoints[0]!.replace(/[.]/g, '\\.')}`));
  });
});
