// Issue 17, item 4: a flood of idle TCP connections against `meshpilot serve` running with a
// low file-descriptor limit (1,200, set with prlimit as an operator would with ulimit -n). The
// per-source cap keeps one flooding address from taking the xDS port, the listener cap keeps
// descriptors for the admin port and files, connections that never make a request are closed
// at the deadline; every refusal is counted, and logged once per burst. Real Envoys connect
// during the flood and keep being served.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { eventually, httpRequest, startHttpUpstream, type HttpUpstream } from './harness/index.js';
import { APP_PORT, backend, backendHost, frontend, photoAppConfig } from './kit/photo-app.js';
import { startProcessMesh, type ProcessMesh } from './kit/process-mesh.js';
import { logEntries } from './kit/processes.js';

const FD_LIMIT = 1_200;
const PER_SOURCE = 300;
// What meshpilot leaves for the xDS port under that limit: the soft limit minus a reserve of 512.
const XDS_CAP = FD_LIMIT - 512;
const FLOOD_PER_SOURCE = 1_000;

describe('connection flood against a low file-descriptor limit (issue 17)', function () {
  this.timeout(180_000);
  let mesh: ProcessMesh;
  const flood: Socket[] = [];
  let backendApp: HttpUpstream | undefined;

  before(function () {
    // util-linux's prlimit lowers the server's limit; without it this test cannot prove anything, so it fails.
    if (spawnSync('prlimit', ['--version']).error) throw new Error('prlimit(1) not found: install util-linux');
  });
  afterEach(function () {
    mesh?.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    for (const s of flood.splice(0)) s.destroy();
    await mesh?.stop();
    await backendApp?.close();
  });

  const metric = async (name: string, labels: string) => {
    const text = await (await fetch(`http://127.0.0.1:${mesh.cp.adminPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };
  /** Opens `n` idle TCP connections from `source`, 100 at a time; resolves once each was accepted or refused. */
  const open = async (source: string, n: number) => {
    const mine: Socket[] = [];
    for (let i = 0; i < n; i += 100) {
      await Promise.all(
        Array.from(
          { length: Math.min(100, n - i) },
          () =>
            new Promise<void>((resolve) => {
              const s = connect({ host: '127.0.0.1', port: mesh.cp.xdsPort, localAddress: source }, () => resolve());
              s.on('error', () => resolve());
              s.on('close', () => resolve());
              mine.push(s);
              flood.push(s);
            }),
        ),
      );
    }
    return mine;
  };
  const healthz = async () => (await fetch(`http://127.0.0.1:${mesh.cp.adminPort}/healthz`)).status;

  it('keeps serving Envoy and the admin port, refuses past the caps, counts it all, and closes idle connections', async () => {
    mesh = await startProcessMesh('flood', { 'mesh.yaml': photoAppConfig() }, [frontend], {
      launcher: ['prlimit', `--nofile=${FD_LIMIT}:${FD_LIMIT}`],
      serveArgs: ['--max-connections-per-source', String(PER_SOURCE), '--first-request-timeout', '20s'],
    });
    const fdLine = logEntries(mesh.cp.current().lines()).find((l) => l.msg === 'file descriptor limit') as
      { soft: number; hard: number; limits: { xds: { maxConnections: number } } } | undefined;
    assert.equal(fdLine?.soft, FD_LIMIT, 'the limit the process has is logged');
    assert.equal(fdLine?.limits.xds.maxConnections, XDS_CAP);
    const sidecar = mesh.sidecars.get(frontend.name)!;
    await eventually(async () => (await sidecar.stat('control_plane.connected_state')) === 1, { description: 'frontend connected' });

    // Two flooding sources: each gets its per-source share and no more.
    const a = await open('127.0.0.2', FLOOD_PER_SOURCE);
    const b = await open('127.0.0.3', FLOOD_PER_SOURCE);
    const refusedBySource = 2 * (FLOOD_PER_SOURCE - PER_SOURCE);
    await eventually(async () => (await metric('meshpilot_connections_refused_total', 'reason="source-limit"')) === refusedBySource, {
      description: `${refusedBySource} source-limit refusals counted`,
    });
    // A new Envoy from another address is still served while 600 idle connections sit there.
    backendApp = await startHttpUpstream({ host: backend.address, port: APP_PORT, name: backend.name });
    const second = await mesh.envoys.start({ name: 'photo-backend-sidecar', bootstrap: mesh.bootstrap(backend) });
    await second.waitReady(30_000);
    await eventually(async () => (await second.stat('control_plane.connected_state')) === 1, { description: 'backend connected' });

    // A third source fills the listener: the rest is refused at the listener cap.
    const c = await open('127.0.0.4', FLOOD_PER_SOURCE);
    await eventually(async () => (await metric('meshpilot_connections_refused_total', 'reason="listener-limit"')) > 0, {
      description: 'listener-limit refusals counted',
    });
    assert.equal(await metric('meshpilot_connections_open', 'listener="xds"'), XDS_CAP);
    // The admin port has descriptors of its own: /healthz and /metrics answer at the cap.
    assert.equal(await healthz(), 200);
    // Both sidecars keep their streams: traffic flows over the config they were sent.
    assert.equal(await sidecar.stat('control_plane.connected_state'), 1);
    assert.equal(await second.stat('control_plane.connected_state'), 1);

    // The idle ones never made a request: closed at the deadline, every one of them.
    await eventually(() => [...a, ...b, ...c].every((s) => s.destroyed || s.readableEnded), {
      timeoutMs: 60_000,
      description: 'every idle connection closed by the server',
    });
    await eventually(async () => (await metric('meshpilot_connections_refused_total', 'reason="no-request"')) >= XDS_CAP - 2, {
      description: 'idle closes counted',
    });
    // Counted by the server, not by when this process notices its resets: what was not refused at accept fit under the cap.
    const refusedAtAccept =
      (await metric('meshpilot_connections_refused_total', 'reason="source-limit"')) +
      (await metric('meshpilot_connections_refused_total', 'reason="listener-limit"'));
    const admitted = 3 * FLOOD_PER_SOURCE - refusedAtAccept;
    assert.ok(admitted <= XDS_CAP - 2, `${admitted} flood connections were admitted beside the two sidecars; the cap is ${XDS_CAP}`);
    await eventually(async () => (await metric('meshpilot_connections_open', 'listener="xds"')) === 2, {
      description: 'only the two sidecars left',
    });
    const res = await eventually(
      async () => {
        const r = await httpRequest({ host: frontend.address, port: OUTBOUND_HTTP_PORT, path: '/', headers: { host: backendHost } });
        return r.status === 200 ? r : false;
      },
      { description: 'frontend → backend after the flood' },
    );
    assert.equal(res.status, 200);

    // One line per burst, not one per connection: thousands of refusals, a handful of lines.
    const lines = logEntries(mesh.cp.current().lines());
    const refusedLines = lines.filter((l) => l.msg === 'connections refused');
    const idleLines = lines.filter((l) => l.msg === 'idle connections closed');
    const refusedTotal = refusedLines.reduce((n, l) => n + Number(l.count), 0);
    console.log(`      ${refusedTotal} refusals in ${refusedLines.length} log lines; idle closes in ${idleLines.length} lines`);
    assert.ok(refusedLines.length >= 1 && refusedLines.length <= 10, `${refusedLines.length} 'connections refused' lines`);
    assert.ok(idleLines.length >= 1 && idleLines.length <= 10, `${idleLines.length} 'idle connections closed' lines`);
  });
});
