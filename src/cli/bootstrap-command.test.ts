import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../observability/index.js';
import { registerBootstrapCommand } from './bootstrap-command.js';
import { registerCaCommands } from './ca-commands.js';
import { runCli } from './testing.js';

const photo = fileURLToPath(new URL('../../../examples/photo-app/', import.meta.url));

const run = (...args: string[]) =>
  runCli(
    (program, io) => {
      registerCaCommands(program, { log: silentLogger, write: io.write });
      registerBootstrapCommand(program);
    },
    ...args,
  );

describe('cli: meshpilot bootstrap --config', () => {
  let dir: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-bootstrap-'));
    assert.equal((await run('ca', 'init', '--state-dir', dir)).exitCode, 0);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const bootstrap = (workload: string, sa: string, address: string, out = join(dir, 'b.json')) =>
    run(
      'bootstrap',
      '--state-dir',
      dir,
      '--namespace',
      'photo-ns',
      '--workload',
      workload,
      '--service-account',
      sa,
      '--address',
      address,
      '--config',
      photo,
      '--out',
      out,
    );

  it('writes the bootstrap of a workload the config has, at its address, as its service account', async () => {
    const r = await bootstrap('photo-frontend', 'photo-frontend', '127.0.0.11');
    assert.equal(r.exitCode, 0, r.err);
    assert.ok(existsSync(join(dir, 'b.json')));
  });

  it('refuses a workload the config does not have, naming it and the config', async () => {
    const r = await bootstrap('nobody', 'photo-frontend', '127.0.0.11');
    assert.notEqual(r.exitCode, 0);
    assert.match(r.err, /--workload: no WorkloadEntry photo-ns\/nobody in the config/);
    assert.ok(!existsSync(join(dir, 'b.json')), 'nothing written');
  });

  it('refuses an address that is not the workload’s, naming the file and line that say otherwise', async () => {
    const r = await bootstrap('photo-frontend', 'photo-frontend', '127.0.0.99');
    assert.notEqual(r.exitCode, 0);
    assert.match(r.err, /--address: photo-ns\/photo-frontend has address 127\.0\.0\.11 \(.*mesh\.yaml:\d+\), not 127\.0\.0\.99/);
  });

  it('refuses a service account the workload does not run as', async () => {
    const r = await bootstrap('photo-frontend', 'photo-backend', '127.0.0.11');
    assert.notEqual(r.exitCode, 0);
    assert.match(r.err, /--service-account: photo-ns\/photo-frontend runs as photo-ns\/photo-frontend/);
  });

  it('names the path and the fix for an --out it cannot write and a --state-dir with no CA', async () => {
    const out = join(dir, 'no-such-dir', 'b.json');
    const r = await bootstrap('photo-frontend', 'photo-frontend', '127.0.0.11', out);
    assert.equal(r.exitCode, 1);
    assert.ok(r.err.includes(`--out ${out}: cannot write: no such file or directory (ENOENT)`), r.err);
    const missing = join(dir, 'typo');
    const m = await run(
      'bootstrap',
      '--state-dir',
      missing,
      '--namespace',
      'photo-ns',
      '--workload',
      'w',
      '--service-account',
      'w',
      '--address',
      '127.0.0.11',
    );
    assert.equal(m.exitCode, 1);
    assert.ok(
      m.err.includes(`--state-dir ${missing}: ${missing} does not exist; check the path, or create the CA with 'meshpilot ca init`),
      m.err,
    );
  });
});
