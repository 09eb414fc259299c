import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { eventually, SERVER_NAME, startCaFixture, watchSds } from '../agent/testing.js';
import { createRecordingLogger } from '../observability/index.js';
import { parseAgentFlags, registerAgentCommand, type AgentFlags } from './agent-command.js';
import { registerServeCommand } from './serve-command.js';

const ROOT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const base: AgentFlags = {
  caAddress: '127.0.0.1:15012',
  caRoot: 'root-cert.pem',
  tokenFile: 'token.jwt',
  namespace: 'vm-ns',
  serviceAccount: 'vm-app',
  trustDomain: 'cluster.local',
  sdsSocket: '/run/agent.sock',
  logLevel: 'info',
};
const read = () => ROOT;

describe('cli: meshpilot agent', function () {
  this.timeout(20_000);

  it('derives the SPIFFE ID from namespace, service account and trust domain', () => {
    const r = parseAgentFlags({ ...base, trustDomain: 'example.org', certTtl: '1h', tlsServerName: SERVER_NAME }, read);
    assert.ok(r.ok, r.ok ? '' : r.error.join('; '));
    assert.equal(r.value.spiffeId, 'spiffe://example.org/ns/vm-ns/sa/vm-app');
    assert.equal(r.value.ttlMs, 3_600_000);
    assert.equal(r.value.serverName, SERVER_NAME);
    // Pinned as sidecars pin it: the control plane's identity in the same trust domain.
    assert.equal(r.value.controlPlaneId, 'spiffe://example.org/ns/istio-system/sa/meshpilot');
    const other = parseAgentFlags({ ...base, rootNamespace: 'mesh-root' }, read);
    assert.equal(other.ok && other.value.controlPlaneId, 'spiffe://cluster.local/ns/mesh-root/sa/meshpilot');
    assert.equal(r.value.sdsSocketPath, '/run/agent.sock');
  });

  it('defaults to the address `meshpilot serve` listens on by default, and needs no TLS server name', () => {
    const program = new Command('meshpilot');
    registerAgentCommand(program);
    registerServeCommand(program);
    const option = (cmd: string, flag: string) =>
      program.commands.find((c) => c.name() === cmd)!.options.find((o) => o.long === flag)?.defaultValue as unknown;
    assert.equal(option('agent', '--ca-address'), option('serve', '--xds-address'));
    assert.equal(option('agent', '--tls-server-name'), undefined);
    const r = parseAgentFlags({ ...base, caAddress: String(option('agent', '--ca-address')) }, read);
    assert.ok(r.ok && r.value.serverName === undefined && r.value.caAddress === '127.0.0.1:15012');
  });

  it('takes --log-format json or pretty, as serve does, and names the choices for anything else', async () => {
    const program = new Command('meshpilot').exitOverride();
    let err = '';
    registerAgentCommand(program, { log: createRecordingLogger() });
    for (const c of program.commands) c.exitOverride().configureOutput({ writeErr: (t) => (err += t) });
    await assert.rejects(program.parseAsync(['agent', '--log-format', 'text'], { from: 'user' }));
    assert.match(err, /option '--log-format <format>' argument 'text' is invalid\. Allowed choices are json, pretty\./);
  });

  it('takes --spiffe-id instead', () => {
    const r = parseAgentFlags(
      { ...base, namespace: undefined, serviceAccount: undefined, spiffeId: 'spiffe://cluster.local/ns/a/sa/b' },
      read,
    );
    assert.ok(r.ok && r.value.spiffeId === 'spiffe://cluster.local/ns/a/sa/b');
  });

  it('reports every problem at once, each with its flag', () => {
    const r = parseAgentFlags(
      {
        caAddress: 'nowhere',
        trustDomain: 'cluster.local',
        logLevel: 'info',
        spiffeId: 'spiffe://cluster.local/ns/a/../b',
        namespace: 'x',
        certTtl: '7d',
      },
      read,
    );
    assert.ok(!r.ok);
    const text = r.error.join('\n');
    for (const flag of [
      '--ca-address',
      '--ca-root',
      '--spiffe-id: give either',
      '--spiffe-id: spiffe id path',
      '--token-file',
      '--sds-socket',
      '--cert-ttl',
    ])
      assert.ok(text.includes(flag), `mentions ${flag}:\n${text}`);
  });

  it('refuses an unreadable or empty root, a bad namespace and a bad trust domain', () => {
    const r = parseAgentFlags({ ...base, namespace: 'Not_A_Label' }, () => {
      throw new Error('ENOENT');
    });
    assert.ok(!r.ok);
    assert.match(r.error.join('\n'), /--ca-root: cannot read root-cert.pem: ENOENT/);
    assert.match(r.error.join('\n'), /--namespace\/--service-account: namespace/);
    const td = parseAgentFlags({ ...base, trustDomain: 'Bad Domain' }, read);
    assert.match(td.ok ? '' : td.error.join('\n'), /--trust-domain/);
    const noPem = parseAgentFlags(base, () => 'hello');
    assert.match(noPem.ok ? '' : noPem.error.join('\n'), /holds no PEM certificate/);
  });

  it('runs in-process: serves its SVID over SDS until stopped, then removes the socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshpilot-agent-cli-'));
    const f = await startCaFixture();
    try {
      writeFileSync(join(dir, 'root-cert.pem'), f.rootPem);
      writeFileSync(join(dir, 'token.jwt'), await f.token());
      const socket = join(dir, 'agent.sock');
      let stop!: (s: string) => void;
      const stopSignal = new Promise<string>((r) => (stop = r));
      const log = createRecordingLogger();
      const program = new Command('meshpilot').exitOverride();
      registerAgentCommand(program, { log, stopSignal });
      const running = program.parseAsync(
        [
          'agent',
          '--ca-address',
          f.address(),
          '--ca-root',
          join(dir, 'root-cert.pem'),
          '--token-file',
          join(dir, 'token.jwt'),
          '--namespace',
          'vm-ns',
          '--service-account',
          'vm-app',
          '--sds-socket',
          socket,
          '--tls-server-name',
          SERVER_NAME,
          '--cert-ttl',
          '30m',
        ],
        { from: 'user' },
      );
      await eventually(() => existsSync(socket), 'the socket');
      const sds = watchSds(socket);
      try {
        await eventually(() => sds.defaultSerial(), 'the SVID over SDS');
      } finally {
        sds.close();
      }
      stop('SIGTERM');
      await running;
      assert.equal(existsSync(socket), false, 'socket removed');
      assert.ok(log.lines.some((l) => l.msg === 'shutting down' && l.fields.signal === 'SIGTERM'));
    } finally {
      await f.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
