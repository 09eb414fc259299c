// A workload's sidecar in capture mode, as an operator would run it: `meshpilot bootstrap --capture`
// writes the bootstrap, Envoy runs as uid 1337 inside the workload's namespace, and its admin
// listens on 127.0.0.1:15000 there, so the test reads it with a client run in that namespace.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CAPTURE_ADMIN_PORT } from '../../src/bootstrap/index.js';
import { resolveEnvoyBin } from '../harness/index.js';
import { PROXY_UID, TMP_PREFIX, type NsProcess, type TestHost } from './netns.js';

const BIN = fileURLToPath(new URL('../../src/cli/bin.js', import.meta.url));
const READY_TIMEOUT_MS = 20_000;

/** Runs the real meshpilot CLI to completion; throws with its stderr on a non-zero exit. */
export function meshpilotCli(args: readonly string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`meshpilot ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

// Reads Envoy's admin from inside the namespace (it is bound to the namespace's own loopback).
const ADMIN_GET = `
const http = require('node:http');
http.get({ host: '127.0.0.1', port: Number(process.argv[1]), path: process.argv[2], timeout: 3000 }, (res) => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (c) => (body += c));
  res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, body })));
}).on('error', (e) => process.stdout.write(JSON.stringify({ error: e.code || e.message })));`;

/** A captured workload's Envoy. */
export interface CapturedSidecar {
  readonly proc: NsProcess;
  readonly nodeId: string;
  /** GET on the admin; status 0 when it cannot be reached. */
  admin(pathAndQuery: string): Promise<{ status: number; body: string }>;
  /** Counters and gauges whose name matches the regex. */
  stats(filter: string): Promise<Map<string, number>>;
  /** One counter or gauge (0 when Envoy has not created it). */
  stat(name: string): Promise<number>;
  stop(): Promise<void>;
}

/** What `meshpilot bootstrap` needs to know about the workload and the control plane. */
export interface CapturedSidecarOptions {
  readonly stateDir: string;
  readonly namespace: string;
  readonly workload: string;
  readonly serviceAccount: string;
  readonly xdsAddress: string;
  /** Read the SVID from this directory kept by `meshpilot serve --secret-dir` (bootstrap --cert-dir). */
  readonly certDir?: string;
}

/** Writes the bootstrap with the CLI (`--capture`), starts Envoy as uid 1337 in `host`, and waits until it is ready (bounded). */
export async function startCapturedSidecar(host: TestHost, o: CapturedSidecarOptions): Promise<CapturedSidecar> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${process.pid}-sidecar-${host.role}-`));
  fs.chownSync(dir, PROXY_UID, PROXY_UID);
  const config = path.join(dir, 'bootstrap.json');
  meshpilotCli([
    'bootstrap',
    ...['--state-dir', o.stateDir, '--namespace', o.namespace, '--workload', o.workload, '--service-account', o.serviceAccount],
    ...['--address', host.ip, '--xds-address', o.xdsAddress, '--capture', '--out', config],
    ...(o.certDir ? ['--cert-dir', o.certDir] : []),
  ]);
  // The bootstrap holds a token (mode 0600): Envoy's own user must read it.
  fs.chownSync(config, PROXY_UID, PROXY_UID);
  const nodeId = (JSON.parse(fs.readFileSync(config, 'utf8')) as { node: { id: string } }).node.id;
  const proc = host.spawn(
    `envoy-${host.role}`,
    [resolveEnvoyBin(), '--disable-hot-restart', '--concurrency', '1', '-c', config, '--log-level', 'info'],
    { uid: PROXY_UID },
  );
  async function admin(pathAndQuery: string): Promise<{ status: number; body: string }> {
    const r = await host.exec([process.execPath, '-e', ADMIN_GET, String(CAPTURE_ADMIN_PORT), pathAndQuery], { timeoutMs: 10_000 });
    const parsed = JSON.parse(r.stdout || '{}') as { status?: number; body?: string };
    return { status: parsed.status ?? 0, body: parsed.body ?? '' };
  }
  async function stats(filter: string): Promise<Map<string, number>> {
    const r = await admin(`/stats?format=json&filter=${encodeURIComponent(filter)}`);
    const m = new Map<string, number>();
    if (r.status !== 200) return m;
    const parsed = JSON.parse(r.body) as { stats?: Array<{ name?: string; value?: unknown }> };
    for (const s of parsed.stats ?? []) if (typeof s.name === 'string' && typeof s.value === 'number') m.set(s.name, s.value);
    return m;
  }
  const stop = async () => {
    await proc.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (!proc.running) {
      await stop();
      throw new Error(`envoy in ${host.ns} exited; output:\n${proc.logs(60)}`);
    }
    if ((await admin('/ready')).status === 200) break;
    if (Date.now() > deadline) {
      const logs = proc.logs(60);
      await stop();
      throw new Error(`envoy in ${host.ns} not ready within ${READY_TIMEOUT_MS} ms; output:\n${logs}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    proc,
    nodeId,
    admin,
    stats,
    async stat(name) {
      return (await stats(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`)).get(name) ?? 0;
    },
    stop,
  };
}
