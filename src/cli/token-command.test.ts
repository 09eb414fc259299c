import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { createTokenVerifier, loadOrCreateTokenKey } from '../auth/index.js';
import { mustTrustDomain } from '../identity/index.js';
import { systemClock, unwrap } from '../lib/index.js';
import { createSelfSignedCa } from '../ca/index.js';
import { registerBootstrapCommand } from './bootstrap-command.js';
import { registerTokenCommand } from './token-command.js';

async function run(...args: string[]): Promise<{ err: string; exitCode: number }> {
  let err = '';
  const program = new Command('meshpilot').exitOverride().configureOutput({ writeErr: (s) => (err += s) });
  registerTokenCommand(program);
  registerBootstrapCommand(program);
  for (const c of program.commands) c.exitOverride().configureOutput({ writeErr: (s) => (err += s) });
  try {
    await program.parseAsync(args, { from: 'user' });
    return { err, exitCode: 0 };
  } catch (e) {
    if (e instanceof CommanderError) return { err, exitCode: e.exitCode };
    throw e;
  }
}

/** A CA in `dir`, as `meshpilot ca init` makes it: `token` refuses a state directory without one. */
function initCa(dir: string): void {
  unwrap(createSelfSignedCa({ stateDir: dir, trustDomain: mustTrustDomain('cluster.local') })).close();
}

describe('cli: meshpilot token', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-token-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a --state-dir with no CA, naming it and the fix, and makes no signing key there', async () => {
    const typo = join(dir, 'stat');
    const r = await run('token', '--state-dir', typo, '--namespace', 'photo-ns', '--service-account', 'photo-frontend');
    assert.notEqual(r.exitCode, 0);
    assert.ok(
      r.err.includes(`--state-dir ${typo}: ${typo} does not exist; check the path, or create the CA with 'meshpilot ca init`),
      r.err,
    );
    const empty = await run('token', '--state-dir', dir, '--namespace', 'photo-ns', '--service-account', 'photo-frontend');
    assert.match(empty.err, /holds no CA \(no ca\.json\)/);
    assert.equal(existsSync(join(dir, 'token-signing-key.pem')), false);
  });

  it('refuses to mint a token for the control plane service account of the root namespace', async () => {
    const r = await run('token', '--state-dir', dir, '--namespace', 'istio-system', '--service-account', 'meshpilot');
    assert.notEqual(r.exitCode, 0);
    assert.match(r.err, /istio-system\/meshpilot is reserved/);
    const custom = await run(
      'token',
      '--state-dir',
      dir,
      '--namespace',
      'root',
      '--service-account',
      'meshpilot',
      '--root-namespace',
      'root',
    );
    assert.notEqual(custom.exitCode, 0);
  });

  it('refuses to write a sidecar bootstrap (and its token) for the control plane service account', async () => {
    const r = await run(
      'bootstrap',
      '--state-dir',
      dir,
      '--namespace',
      'istio-system',
      '--service-account',
      'meshpilot',
      '--workload',
      'cp',
      '--address',
      '127.0.0.1',
    );
    assert.notEqual(r.exitCode, 0);
    assert.match(r.err, /istio-system\/meshpilot is reserved/);
  });

  it('--refresh-into replaces a token file atomically (0600) with a fresh token the verifier accepts', async () => {
    initCa(dir);
    const file = join(dir, 'token');
    writeFileSync(file, 'an.expired.token\n', { mode: 0o644 });
    const r = await run(
      'token',
      '--state-dir',
      dir,
      '--namespace',
      'photo-ns',
      '--service-account',
      'photo-frontend',
      '--ttl',
      '1h',
      '--refresh-into',
      file,
    );
    assert.equal(r.exitCode, 0, r.err);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const verifier = createTokenVerifier({
      key: unwrap(loadOrCreateTokenKey(dir)),
      trustDomain: mustTrustDomain('cluster.local'),
      clock: systemClock,
    });
    const v = await verifier.verifyWithExpiry(readFileSync(file, 'utf8').trim());
    assert.equal(unwrap(v).identity, 'spiffe://cluster.local/ns/photo-ns/sa/photo-frontend');
    assert.ok(unwrap(v).expiresAt > Date.now() + 3_500_000);
  });

  it('--refresh-into names the flag when the file cannot be written', async () => {
    initCa(dir);
    const r = await run(
      'token',
      '--state-dir',
      dir,
      '--namespace',
      'a',
      '--service-account',
      'b',
      '--refresh-into',
      join(dir, 'missing', 'token'),
    );
    assert.notEqual(r.exitCode, 0);
    assert.match(r.err, /--refresh-into: .*missing/);
  });
});
