import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

describe('cli: meshpilot bootstrap --control-plane', () => {
  let dir: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-bootstrap-'));
    assert.equal((await run('ca', 'init', '--state-dir', dir)).exitCode, 0);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const args = (cp: string) => [
    'bootstrap',
    '--state-dir',
    dir,
    '--namespace',
    'photo-ns',
    '--workload',
    'photo-frontend',
    '--service-account',
    'photo-frontend',
    '--address',
    '127.0.0.11',
    '--control-plane',
    cp,
    '--out',
    join(dir, 'b.json'),
  ];
  const written = () => JSON.parse(readFileSync(join(dir, 'b.json'), 'utf8')) as unknown;

  it('lists every replica in the xDS cluster, round robin, so that Envoy fails over', async () => {
    const r = await run(...args('127.0.0.1:15012, 127.0.0.2:15013,127.0.0.3:15014'));
    assert.equal(r.exitCode, 0, r.err);
    const b = written() as { static_resources: { clusters: Record<string, unknown>[] } };
    const xds = b.static_resources.clusters.find((c) => c.name === 'xds-grpc') as {
      type: string;
      lb_policy: string;
      load_assignment: {
        endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } } }[] }[];
      };
    };
    assert.equal(xds.type, 'STATIC');
    assert.equal(xds.lb_policy, 'ROUND_ROBIN');
    assert.deepEqual(
      xds.load_assignment.endpoints[0]!.lb_endpoints.map(
        (e) => `${e.endpoint.address.socket_address.address}:${e.endpoint.address.socket_address.port_value}`,
      ),
      ['127.0.0.1:15012', '127.0.0.2:15013', '127.0.0.3:15014'],
    );
    assert.equal((await run(...args('cp-a.mesh:15012,cp-b.mesh:15012'))).exitCode, 0);
    const named = written() as {
      static_resources: { clusters: { name: string; type: string }[] };
    };
    assert.equal(named.static_resources.clusters.find((c) => c.name === 'xds-grpc')!.type, 'STRICT_DNS');
  });

  it('refuses a malformed or repeated replica, naming the flag', async () => {
    await assert.rejects(run(...args('127.0.0.1:15012,127.0.0.1')), /--control-plane: expected host:port/);
    await assert.rejects(run(...args('127.0.0.1:15012,127.0.0.1:15012')), /--control-plane: 127\.0\.0\.1:15012 is listed twice/);
  });
});
