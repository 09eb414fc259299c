import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRecordingLogger } from '../observability/index.js';
import { createNodeAgent, type NodeAgent } from './index.js';
import {
  CONTROL_PLANE_ID,
  createManualTimers,
  eventually,
  SERVER_NAME,
  startCaFixture,
  VM_ID,
  watchSds,
  type CaFixture,
  type ManualTimers,
  type SdsWatcher,
} from './testing.js';

// Short SVIDs keep every certificate inside the CA's 5-minute back-dating, so that Node's TLS
// (which checks client certificates against the real time) accepts renewals made on a clock
// the test moves forward.
const TTL_MS = 120_000;

describe('agent: node agent against a real CSR service', function () {
  this.timeout(30_000);
  let dir: string;
  let f: CaFixture;
  let timers: ManualTimers;
  let agent: NodeAgent;
  let sds: SdsWatcher | undefined;
  let log: ReturnType<typeof createRecordingLogger>;
  let socket: string;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-agent-'));
    f = await startCaFixture();
    timers = createManualTimers(f.clock);
    log = createRecordingLogger();
    writeFileSync(join(dir, 'token.jwt'), (await f.token()) + '\n');
    socket = join(dir, 'agent.sock');
    agent = createNodeAgent({
      caAddress: f.address(),
      caRootPem: f.rootPem,
      controlPlaneId: CONTROL_PLANE_ID,
      serverName: SERVER_NAME,
      credential: { tokenFile: join(dir, 'token.jwt') },
      spiffeId: VM_ID,
      sdsSocketPath: socket,
      ttlMs: TTL_MS,
      clock: f.clock,
      timers,
      random: () => 0.5,
      log,
    });
    await agent.start();
    sds = undefined;
  });

  afterEach(async () => {
    sds?.close();
    await agent.stop();
    await f.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Fires the next timer (a renewal or retry) and waits for the attempt it starts to finish. */
  async function fireAttempt(): Promise<void> {
    const before = { failures: agent.status().failures, serial: agent.status().svid?.serialHex };
    assert.ok(timers.fireNext(), 'a timer is pending');
    await eventually(() => {
      const s = agent.status();
      return s.nextAttemptAt !== undefined && (s.failures !== before.failures || s.svid?.serialHex !== before.serial);
    }, 'the attempt to finish');
  }

  it('gets an SVID with its token and serves default and ROOTCA on the Unix socket', async () => {
    assert.equal(statSync(socket).mode & 0o777, 0o600, 'the socket is owner-only');
    sds = watchSds(socket);
    const secrets = await eventually(() => sds!.latest()?.has('default') && sds!.latest(), 'both secrets');
    const tls = secrets.get('default')!.tlsCertificate!;
    const leaf = new X509Certificate(tls.certificateChain!.inlineString!);
    assert.equal(leaf.subjectAltName, `URI:${VM_ID}`);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(tls.privateKey!.inlineString!)), 'the served key is the leaf’s');
    assert.equal(secrets.get('ROOTCA')!.validationContext!.trustedCa!.inlineString, f.rootPem);
    assert.ok(Math.abs(Date.parse(leaf.validTo) - f.clock.now() - TTL_MS) < 2_000, 'the requested lifetime');
    assert.deepEqual(f.issued(), [{ identity: VM_ID, via: 'token', serial: agent.status().svid!.serialHex }]);
    assert.ok(log.lines.some((l) => l.msg === 'svid issued' && l.fields.via === 'token'));
  });

  it('renews at the renewal point with its current SVID as credential, and pushes the new one', async () => {
    sds = watchSds(socket);
    const first = await eventually(() => sds!.defaultSerial(), 'the first SVID');
    const status = agent.status();
    // Half of the lifetime, brought forward by half the jitter (random 0.5 × 0.1).
    const expected =
      Math.max(status.svid!.notBefore, f.clock.now()) + 0.45 * (status.svid!.notAfter - Math.max(status.svid!.notBefore, f.clock.now()));
    assert.ok(Math.abs(status.nextAttemptAt! - expected) < 1_000, `renewal due at ${status.nextAttemptAt}, expected ${expected}`);
    await fireAttempt();
    const second = await eventually(() => sds!.defaultSerial() !== first && sds!.defaultSerial(), 'the renewed SVID');
    assert.equal(second, agent.status().svid!.serialHex);
    assert.deepEqual(
      f.issued().map((i) => i.via),
      ['token', 'certificate'],
      'the renewal was authenticated with the current SVID',
    );
    assert.equal(f.issued()[1]!.identity, VM_ID);
  });

  it('keeps serving the current SVID while the CA is down, retrying with capped backoff, and renews when it is back', async () => {
    sds = watchSds(socket);
    const first = await eventually(() => sds!.defaultSerial(), 'the first SVID');
    await f.stopServer();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      await fireAttempt();
      const s = agent.status();
      assert.equal(s.failures, i + 1);
      delays.push(s.nextAttemptAt! - f.clock.now());
      assert.equal(sds.defaultSerial(), first, 'the current SVID is still served');
    }
    // random 0.5 → three quarters of each step: 250, 500, 1000, 2000, 4000, 5000 (capped).
    assert.deepEqual(delays, [188, 375, 750, 1500, 3000, 3750]);
    assert.ok(
      log.lines.some((l) => l.msg === 'certificate request failed' && l.level === 'warn' && /UNAVAILABLE/.test(String(l.fields.cause))),
    );
    assert.ok(f.clock.now() < agent.status().svid!.notAfter, 'still valid');

    await f.startServer();
    await fireAttempt();
    const renewed = await eventually(() => sds!.defaultSerial() !== first && sds!.defaultSerial(), 'the renewed SVID');
    assert.equal(agent.status().failures, 0);
    assert.equal(f.issued().at(-1)!.via, 'certificate');
    assert.equal(f.issued().at(-1)!.serial, renewed);
  });

  it('stops serving an SVID that expired without renewal, logs it loudly, and recovers with its token', async () => {
    sds = watchSds(socket);
    await eventually(() => sds!.defaultSerial(), 'the first SVID');
    await f.stopServer();
    const notAfter = agent.status().svid!.notAfter;
    for (let i = 0; i < 100 && f.clock.now() < notAfter; i++) {
      assert.ok(timers.fireNext(), 'a retry or the expiry is pending');
      await settle();
    }
    await eventually(() => agent.status().svid === undefined, 'the expiry');
    await eventually(() => sds!.latest() && !sds!.latest()!.has('default') && sds!.latest()!.has('ROOTCA'), 'an SDS push without default');
    assert.ok(log.lines.some((l) => l.level === 'error' && l.msg === 'svid expired without renewal; no longer served'));

    await f.startServer();
    // The expired SVID cannot prove anything any more: the token does.
    for (let i = 0; i < 10 && !agent.status().svid; i++) {
      assert.ok(timers.fireNext(), 'a retry is pending');
      await settle();
    }
    await eventually(() => sds!.defaultSerial(), 'a new SVID');
    assert.equal(f.issued().at(-1)!.via, 'token');
  });

  it('falls back to its token when the CA refuses its SVID (revoked)', async () => {
    const first = await eventually(() => agent.status().svid, 'the first SVID');
    await f.ca.revoke(first.serialHex);
    await fireAttempt();
    assert.equal(agent.status().failures, 0);
    assert.notEqual(agent.status().svid!.serialHex, first.serialHex);
    assert.equal(f.issued().at(-1)!.via, 'token');
    assert.ok(f.log.lines.some((l) => l.msg === 'csr rejected' && l.fields.authKind === 'revoked'));
  });

  it('removes its socket when stopped', async () => {
    assert.ok(existsSync(socket));
    await agent.stop();
    assert.equal(existsSync(socket), false);
  });

  it('pins the control plane by SPIFFE ID: a certificate for the right host name and address but another identity gets nothing', async () => {
    // Same mesh root, same DNS name and IP SAN: only the SPIFFE ID differs (a shared PKI's certificate for that host).
    const impostor = await startCaFixture({ servingId: 'spiffe://cluster.local/ns/istio-system/sa/not-meshpilot' });
    const other = createNodeAgent({
      caAddress: impostor.address(),
      caRootPem: impostor.rootPem,
      controlPlaneId: CONTROL_PLANE_ID,
      serverName: SERVER_NAME,
      credential: { tokenFile: join(dir, 'token.jwt') },
      spiffeId: VM_ID,
      sdsSocketPath: join(dir, 'other.sock'),
      clock: impostor.clock,
      timers: createManualTimers(impostor.clock),
      log,
    });
    try {
      await other.start();
      assert.equal(other.status().svid, undefined);
      assert.equal(other.status().failures, 1);
      const failed = log.lines.find((l) => l.msg === 'certificate request failed');
      assert.match(String(failed?.fields.cause), /not-meshpilot.*not spiffe:\/\/cluster.local\/ns\/istio-system\/sa\/meshpilot/);
      // The handshake failed before any request: the impostor never saw the token or a CSR.
      assert.deepEqual(impostor.issued(), []);
      assert.ok(!impostor.log.lines.some((l) => l.msg === 'csr rejected'));
    } finally {
      await other.stop();
      await impostor.close();
    }
  });

  it('reaches a control plane by IP address with no TLS server name (its certificate is checked by SPIFFE ID)', async () => {
    const plain = createNodeAgent({
      caAddress: f.address(),
      caRootPem: f.rootPem,
      controlPlaneId: CONTROL_PLANE_ID,
      credential: { tokenFile: join(dir, 'token.jwt') },
      spiffeId: VM_ID,
      sdsSocketPath: join(dir, 'plain.sock'),
      clock: f.clock,
      timers: createManualTimers(f.clock),
      log,
    });
    try {
      await plain.start();
      assert.ok(plain.status().svid, JSON.stringify(log.lines.filter((l) => l.msg === 'certificate request failed').map((l) => l.fields)));
    } finally {
      await plain.stop();
    }
  });

  /** Waits until no certificate request is in flight (the agent has scheduled its next timer). */
  async function settle(): Promise<void> {
    await eventually(() => agent.status().nextAttemptAt !== undefined || timers.pending() > 0, 'the agent to settle');
    await eventually(() => agent.status().nextAttemptAt !== undefined, 'the next attempt to be scheduled');
  }
});
