import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMeshpilot } from '../main.js';
import { createRecordingLogger } from '../observability/index.js';

const bin = fileURLToPath(new URL('./bin.js', import.meta.url));
const photoApp = fileURLToPath(new URL('../../../examples/photo-app', import.meta.url));

/** Runs `meshpilot` as a user would; bounded, so a server that unexpectedly starts cannot hang the test. */
function meshpilot(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, MESHPILOT_LOG_LEVEL: 'warn' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function listenOn(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve({ server, port: typeof a === 'object' && a ? a.port : 0 });
    }),
  );
}

describe('cli: meshpilot serve', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-serve-cli-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reports an unknown option as unknown, with a suggestion, not as a missing --config', () => {
    const r = meshpilot('serve', '--conifg', photoApp, '--ephemeral');
    assert.equal(r.code, 1);
    assert.match(r.err, /unknown option '--conifg'/);
    assert.match(r.err, /Did you mean --config\?/);
    assert.doesNotMatch(r.err, /required option/);
    // --config is required with the default file store (with --config-store etcd it is refused instead).
    const missing = meshpilot('serve', '--ephemeral');
    assert.notEqual(missing.code, 0);
    assert.match(missing.err, /--config: required with --config-store files/);
  });

  it('refuses a state directory with no CA unless --init, naming it and the fix, and creates nothing', () => {
    const typo = join(dir, 'stat');
    const r = meshpilot('serve', '--config', photoApp, '--state-dir', typo, '--xds-address', '127.0.0.1:0', '--admin-port', '0');
    assert.equal(r.code, 2);
    assert.ok(r.err.includes(`state directory ${typo} does not exist`), r.err);
    assert.match(r.err, /meshpilot ca init --state-dir/);
    assert.match(r.err, /serve --init/);
    assert.equal(existsSync(typo), false, 'a mistyped directory is not created');
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const e = meshpilot('serve', '--config', photoApp, '--state-dir', empty, '--xds-address', '127.0.0.1:0', '--admin-port', '0');
    assert.equal(e.code, 2);
    assert.ok(e.err.includes(`state directory ${empty} holds no CA (no ca.json)`), e.err);
    assert.deepEqual(readdirSync(empty), [], 'no root was made');
  });

  it('names the flag to change when the xDS or the admin port is in use', async () => {
    const taken = await listenOn();
    try {
      const state = join(dir, 'state');
      assert.equal(meshpilot('ca', 'init', '--state-dir', state).code, 0);
      const xds = meshpilot(
        'serve',
        '--config',
        photoApp,
        '--state-dir',
        state,
        '--xds-address',
        `127.0.0.1:${taken.port}`,
        '--admin-port',
        '0',
      );
      assert.equal(xds.code, 1);
      assert.ok(xds.err.includes(`cannot listen on 127.0.0.1:${taken.port} (xds): address already in use`), xds.err);
      assert.match(xds.err, /choose another with --xds-address <host:port>/);
      const admin = meshpilot(
        'serve',
        '--config',
        photoApp,
        '--state-dir',
        state,
        '--xds-address',
        '127.0.0.1:0',
        '--admin-port',
        String(taken.port),
      );
      assert.equal(admin.code, 1);
      assert.ok(admin.err.includes(`cannot listen on 127.0.0.1:${taken.port} (admin): address already in use`), admin.err);
      assert.match(admin.err, /choose another with --admin-port <port>/);
      assert.equal(existsSync(join(state, 'meshpilot.lock')), false, 'the lock is released on the way out');
    } finally {
      taken.server.close();
    }
  });

  it('names a config path that does not exist in words, not a bare ENOENT', () => {
    const missing = join(dir, 'mesh.yaml');
    const r = meshpilot('serve', '--config', missing, '--ephemeral', '--xds-address', '127.0.0.1:0', '--admin-port', '0');
    assert.equal(r.code, 2);
    assert.ok(r.err.includes(`${missing}: cannot read: no such file or directory (ENOENT)`), r.err);
  });

  it('refuses a --log-format it does not know, listing the choices', () => {
    const r = meshpilot('serve', '--config', photoApp, '--ephemeral', '--log-format', 'text');
    assert.equal(r.code, 1);
    assert.match(r.err, /option '--log-format <format>' argument 'text' is invalid\. Allowed choices are json, pretty\./);
  });

  it('--init creates the CA on first start and reuses it after; leftover temp files are removed at start', async () => {
    const state = join(dir, 'state');
    const start = async () => {
      const log = createRecordingLogger();
      const mp = await startMeshpilot({ configPaths: [photoApp], stateDir: state, init: true, xdsHost: '127.0.0.1', xdsPort: 0, log });
      await mp.stop();
      return log.lines;
    };
    const first = await start();
    const created = first.find((l) => l.msg === 'ca created');
    assert.ok(created, 'the first start says it created the CA');
    // What a crash between write and rename leaves: writeFileAtomic's temp names.
    const leftovers = ['ca.json.tmp-4242-0badf00d', 'root-1-key.pem.tmp-17-deadbeef'];
    for (const f of leftovers) writeFileSync(join(state, f), 'partial');
    writeFileSync(join(state, 'notes.tmp'), 'not ours: kept');
    const second = await start();
    const reused = second.find((l) => l.msg === 'ca reused');
    assert.ok(reused, 'the second start says it reused the CA');
    assert.deepEqual(reused.fields.roots, created.fields.roots, 'the same root');
    const removed = second.find((l) => l.msg === 'leftover temp files removed');
    assert.deepEqual([...((removed?.fields.files as string[] | undefined) ?? [])].sort(), leftovers.sort());
    for (const f of leftovers) assert.equal(existsSync(join(state, f)), false, f);
    assert.equal(existsSync(join(state, 'notes.tmp')), true);
  });
});
