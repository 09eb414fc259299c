// `ca init` and `serve` with the CA key in a SoftHSM2 token: the key is made (or imported) in
// the token, the offline commands need the flags, and serve refuses to start on a bad token
// reference with a message naming module, token and key; rotate-root makes the new root's key there.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPair } from '../ca/index.js';
import { createSoftHsm } from '../ca/softhsm-kit.js';
import type { SoftHsm } from '../ca/softhsm-kit.js';
import { makeTestCa, opensslVerify, removeTempDir, tempDir } from '../ca/testing.js';
import { silentLogger } from '../observability/index.js';
import { registerCaCommands } from './ca-commands.js';
import { runCli } from './testing.js';

const bin = fileURLToPath(new URL('./bin.js', import.meta.url));
const photoApp = fileURLToPath(new URL('../../../examples/photo-app/mesh.yaml', import.meta.url));

describe('cli: the CA key in a PKCS#11 token (SoftHSM2)', function () {
  this.timeout(60_000);
  let hsm: SoftHsm;
  let dir: string;
  let flags: string[];
  beforeEach(() => {
    hsm = createSoftHsm();
    dir = tempDir();
    flags = [
      '--ca-pkcs11-module',
      hsm.module,
      '--ca-pkcs11-token',
      hsm.tokenLabel,
      '--ca-pkcs11-key',
      'mesh-root',
      '--ca-pkcs11-pin-file',
      hsm.pinFile,
    ];
  });
  afterEach(() => {
    hsm.remove();
    removeTempDir(dir);
  });
  let out = '';
  const ca = (...args: string[]) => runCli((p) => registerCaCommands(p, { log: silentLogger, write: (s) => (out += s) }), 'ca', ...args);

  it('ca rotate-root --phase prepare|activate|retire rotates a token-held root offline; show names the new key', async () => {
    const state = join(dir, 'state');
    assert.equal((await ca('init', '--state-dir', state, ...flags)).exitCode, 0);
    for (const phase of ['prepare', 'activate', 'retire']) {
      out = '';
      const r = await ca('rotate-root', '--state-dir', state, '--phase', phase, ...flags);
      assert.equal(r.exitCode, 0, r.err);
      assert.match(out, new RegExp(`roots in bundle: ${phase === 'retire' ? 1 : 2}`));
    }
    out = '';
    const show = await ca('show', '--state-dir', state, ...flags);
    assert.equal(show.exitCode, 0, show.err);
    assert.match(out, /signing key: PKCS#11 key 'mesh-root-root-2' in token 'meshpilot-test'/);
    assert.ok(!existsSync(join(state, 'root-1-key.pkcs11.json')));
  });

  it('ca init generates the root key in the token; show and issue need the flags', async () => {
    out = '';
    const state = join(dir, 'state');
    const init = await ca('init', '--state-dir', state, ...flags);
    assert.equal(init.exitCode, 0, init.err);
    assert.match(out, /generated ECDSA P-256 key 'mesh-root' in token 'meshpilot-test' \(not extractable\)/);
    assert.match(out, /initialized self-signed CA/);
    assert.ok(!existsSync(join(state, 'root-1-key.pem')));
    const bare = await ca('show', '--state-dir', state);
    assert.notEqual(bare.exitCode, 0);
    assert.match(bare.err, /start with --ca-pkcs11-module, --ca-pkcs11-token, --ca-pkcs11-key and --ca-pkcs11-pin-file/);
    out = '';
    const show = await ca('show', '--state-dir', state, ...flags);
    assert.equal(show.exitCode, 0, show.err);
    assert.match(out, /mode: self-signed/);
    assert.match(out, /signing key: PKCS#11 key 'mesh-root' in token 'meshpilot-test' \(PKCS#11 module .*libsofthsm2\.so\)/);
    out = '';
    const issued = await ca(
      'issue',
      '--state-dir',
      state,
      '--namespace',
      'photo-ns',
      '--service-account',
      'photo-backend',
      '--out',
      join(dir, 'out'),
      ...flags,
    );
    assert.equal(issued.exitCode, 0, issued.err);
    const chain = readFileSync(join(dir, 'out', 'cert-chain.pem'), 'utf8');
    const root = readFileSync(join(dir, 'out', 'root-cert.pem'), 'utf8');
    assert.equal(opensslVerify(dir, [chain], root).status, 0);
    out = '';
    const again = await ca('init', '--state-dir', join(dir, 'state2'), ...flags);
    assert.equal(again.exitCode, 0, again.err);
    assert.match(out, /using the existing key 'mesh-root'/);
  });

  it('ca init --plugin-dir imports ca-key.pem into the token once', async () => {
    const plugin = join(dir, 'plugin');
    mkdirSync(plugin);
    const root = makeTestCa({ cn: 'outside root', now: Date.now() });
    const keys = generateKeyPair('ec-p256');
    const intermediate = makeTestCa({ cn: 'intermediate', issuer: root, now: Date.now(), keys });
    writeFileSync(join(plugin, 'ca-cert.pem'), intermediate.pem);
    writeFileSync(join(plugin, 'ca-key.pem'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(plugin, 'root-cert.pem'), root.pem);
    writeFileSync(join(plugin, 'cert-chain.pem'), intermediate.pem + root.pem);
    out = '';
    const init = await ca('init', '--state-dir', join(dir, 'state'), '--plugin-dir', plugin, ...flags);
    assert.equal(init.exitCode, 0, init.err);
    assert.match(
      out,
      /imported .*ca-key\.pem into the token as key 'mesh-root' in token 'meshpilot-test' \(not extractable\): delete .*ca-key\.pem now/,
    );
    assert.match(out, /initialized plug-in CA/);
  });

  it('refuses a partial set of flags, naming the missing ones', async () => {
    const r = await ca('init', '--state-dir', join(dir, 'state'), '--ca-pkcs11-module', hsm.module);
    assert.notEqual(r.exitCode, 0);
    assert.match(r.err, /needs all four --ca-pkcs11 flags; missing: --ca-pkcs11-token, --ca-pkcs11-key, --ca-pkcs11-pin-file/);
  });

  it('serve refuses to start on a missing module, token or key, or a wrong PIN, naming module, token and key', async () => {
    out = '';
    const state = join(dir, 'state');
    assert.equal((await ca('init', '--state-dir', state, ...flags)).exitCode, 0);
    const wrongPin = join(dir, 'wrong-pin');
    writeFileSync(wrongPin, '0000\n', { mode: 0o600 });
    const serve = (over: Record<string, string>) => {
      const f = [...flags];
      for (const [k, v] of Object.entries(over)) f[f.indexOf(k) + 1] = v;
      return spawnSync(
        process.execPath,
        [
          bin,
          'serve',
          '--config',
          photoApp,
          '--state-dir',
          state,
          '--xds-address',
          '127.0.0.1:0',
          '--admin-port',
          '0',
          '--log-level',
          'error',
          ...f,
        ],
        { encoding: 'utf8', env: hsm.env(), timeout: 30_000 },
      );
    };
    const cases: [Record<string, string>, RegExp][] = [
      [{ '--ca-pkcs11-module': '/nonexistent/libp11.so' }, /cannot load PKCS#11 module \/nonexistent\/libp11\.so/],
      [{ '--ca-pkcs11-token': 'no-such-token' }, /no token labelled 'no-such-token' in PKCS#11 module .*libsofthsm2\.so/],
      [{ '--ca-pkcs11-key': 'no-such-key' }, /no private key 'no-such-key' in token 'meshpilot-test' \(PKCS#11 module .*libsofthsm2\.so\)/],
      [{ '--ca-pkcs11-pin-file': wrongPin }, /'mesh-root' in token 'meshpilot-test' \(PKCS#11 module .*\): .*login failed: wrong PIN/],
    ];
    const ephemeral = spawnSync(
      process.execPath,
      [
        bin,
        'serve',
        '--config',
        photoApp,
        '--ephemeral',
        '--xds-address',
        '127.0.0.1:0',
        '--admin-port',
        '0',
        '--log-level',
        'error',
        ...flags,
      ],
      { encoding: 'utf8', env: hsm.env(), timeout: 30_000 },
    );
    assert.equal(ephemeral.status, 2, ephemeral.stderr);
    assert.match(ephemeral.stderr, /a CA key in a PKCS#11 token needs --state-dir \(self-signed root\) or a MeshConfig caPluginDir/);
    for (const [over, re] of cases) {
      const r = serve(over);
      assert.equal(r.status, 2, `${JSON.stringify(over)}: ${r.stderr}`);
      assert.match(r.stderr, /meshpilot: the CA could not start: /);
      assert.match(r.stderr, re);
    }
  });
});
