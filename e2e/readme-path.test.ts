// README's "Running it" works as written: this test takes the sh blocks between the
// `readme-path: begin` and `readme-path: end` markers of README.md (never a copy of them), runs
// them in order in one bash shell from the repository root, and checks what they print: a
// request through two real Envoy sidecars reached the backend's app, and `meshpilot status`
// shows both proxies in sync. The README's own last block stops everything; the test also kills
// the shell's process group, whatever happened, and removes the run directory.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENVOY_VERSION, freePort, resolveEnvoyBin } from './harness/index.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));

/** The sh blocks of README's manual path, in order. */
export function readmePathBlocks(readme: string): string[] {
  const begin = readme.indexOf('<!-- readme-path: begin');
  const end = readme.indexOf('<!-- readme-path: end -->');
  assert.ok(begin >= 0 && end > begin, 'README.md marks its manual path with readme-path: begin / end');
  return [...readme.slice(begin, end).matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** Fails, naming the address, when something already listens there: the README's workload addresses are fixed. */
function assertFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', (e) =>
      reject(new Error(`${host}:${port} is in use (${(e as NodeJS.ErrnoException).code}): README's photo app needs it free`)),
    );
    s.listen(port, host, () => s.close(() => resolve()));
  });
}

describe("README's manual path (Running it)", function () {
  this.timeout(180_000);
  let run: string;
  before(() => (run = mkdtempSync(join(tmpdir(), 'meshpilot-readme-path-'))));
  after(() => rmSync(run, { recursive: true, force: true }));

  it('runs as written: a request through two real Envoy sidecars reaches the app, status shows both SYNCED, and it stops cleanly', async () => {
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const blocks = readmePathBlocks(readme);
    assert.ok(blocks.length >= 4, `found ${blocks.length} sh blocks`);
    // The set-up block before the markers (`make build envoy`) is what `make test` did before this
    // test ran: its products are here, and the Envoy it names is the one the harness pins.
    assert.ok(readme.includes(`.venv/envoy-${ENVOY_VERSION}`), 'README names the pinned Envoy path');
    assert.ok(existsSync(join(repo, 'dist/src/cli/bin.js')), 'built');
    // The photo app's workload addresses and ports come from examples/photo-app; the control
    // plane's ports are variables the README reads, set here to free ones.
    for (const [host, port] of [
      ['127.0.0.11', 15001],
      ['127.0.0.11', 9080],
      ['127.0.0.12', 15001],
      ['127.0.0.12', 9080],
      ['127.0.0.12', 8080],
    ] as const)
      await assertFree(host, port);
    const env = {
      ...process.env,
      ENVOY_BIN: resolveEnvoyBin(),
      RUN: join(run, 'run'),
      XDS: `127.0.0.1:${await freePort()}`,
      ADMIN_PORT: String(await freePort()),
    };
    // A script reads aliases only when told to; an interactive shell, where a reader types these, always does.
    const script = ['set -eu -o pipefail', 'shopt -s expand_aliases', ...blocks].join('\n');
    const shell = spawn('bash', ['-c', script], { cwd: repo, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    shell.stdout.on('data', (d: Buffer) => (out += String(d)));
    shell.stderr.on('data', (d: Buffer) => (err += String(d)));
    const exited = new Promise<number | null>((resolve) => shell.once('exit', (code) => resolve(code)));
    const deadline = setTimeout(() => process.kill(-shell.pid!, 'SIGKILL'), 150_000);
    let code: number | null;
    try {
      code = await exited;
    } finally {
      clearTimeout(deadline);
      // Whatever failed, nothing the README started outlives the test.
      try {
        process.kill(-shell.pid!, 'SIGKILL');
      } catch {
        // the group is already gone
      }
    }
    const logs = () => {
      const log = (f: string) => (existsSync(join(env.RUN, f)) ? `\n--- ${f}\n${readFileSync(join(env.RUN, f), 'utf8').slice(-3000)}` : '');
      return `stdout:\n${out}\nstderr:\n${err}${log('meshpilot.log')}${log('photo-frontend-envoy.log')}${log('photo-backend-envoy.log')}`;
    };
    assert.equal(code, 0, logs());
    // http.server's listing of examples/ came back through frontend sidecar → mTLS → backend sidecar → app.
    assert.match(out, /Directory listing for \//, logs());
    assert.match(out, /photo-app\//);
    for (const w of ['photo-frontend', 'photo-backend'])
      assert.match(
        out,
        new RegExp(
          `^sidecar~127\\.0\\.0\\.1[12]~${w}\\.photo-ns~\\S+\\s+spiffe://cluster\\.local/ns/photo-ns/sa/${w}\\s+(SYNCED\\s+){4}SYNCED`,
          'm',
        ),
        out,
      );
    assert.equal(existsSync(env.RUN), false, "the README's last block removed what it wrote");
  });
});
