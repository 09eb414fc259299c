import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../observability/index.js';
import { startSdsServer } from './sds.js';
import { eventually, VM_ID, watchSds } from './testing.js';

describe('agent: SDS on a Unix socket', function () {
  this.timeout(10_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-sds-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('serves ROOTCA alone until an SVID is published, then both, to any node, and pushes changes', async () => {
    const socket = join(dir, 'agent.sock');
    const sds = await startSdsServer({ socketPath: socket, identity: VM_ID, log: silentLogger });
    assert.ok(sds.ok);
    const a = watchSds(socket, 'sidecar~10.0.0.1~a.ns~ns.svc.cluster.local');
    try {
      sds.value.publish({ rootsPem: 'ROOTS-1' });
      await eventually(() => a.latest()?.get('ROOTCA')?.validationContext?.trustedCa?.inlineString === 'ROOTS-1', 'ROOTCA');
      assert.equal(a.latest()!.has('default'), false);
      sds.value.publish({ svid: { chainPem: 'CHAIN', keyPem: 'KEY' }, rootsPem: 'ROOTS-2' });
      await eventually(() => a.latest()?.get('default')?.tlsCertificate?.privateKey?.inlineString === 'KEY', 'default');
      const b = watchSds(socket, 'another-node');
      try {
        await eventually(() => b.latest()?.get('ROOTCA')?.validationContext?.trustedCa?.inlineString === 'ROOTS-2', 'a second node');
      } finally {
        b.close();
      }
    } finally {
      a.close();
      await sds.value.stop();
    }
    assert.equal(existsSync(socket), false);
  });

  it('replaces a stale socket left by a crash, and refuses to replace a regular file', async () => {
    const socket = join(dir, 'stale.sock');
    // A process killed while listening leaves its socket file behind (a clean close would unlink it).
    const child = spawn(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(socket)}, () => console.log('ready'))`,
    ]);
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGKILL');
    await exited;
    assert.ok(existsSync(socket), 'a stale socket file is left');
    const sds = await startSdsServer({ socketPath: socket, identity: VM_ID, log: silentLogger });
    assert.ok(sds.ok, sds.ok ? '' : sds.error);
    assert.equal(statSync(socket).mode & 0o777, 0o600);
    await sds.value.stop();

    const file = join(dir, 'not-a-socket');
    writeFileSync(file, 'precious');
    const refused = await startSdsServer({ socketPath: file, identity: VM_ID, log: silentLogger });
    assert.match(refused.ok ? '' : refused.error, /is not a socket/);
  });
});
