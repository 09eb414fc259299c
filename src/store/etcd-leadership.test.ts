import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createEtcdLeadership } from './etcd-leadership.js';
import type { Leadership } from './etcd-leadership.js';
import { startEtcdCluster } from './etcd-kit.js';
import type { EtcdCluster } from './etcd-kit.js';

async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`never happened: ${what}`);
}

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

/** A replica in its own process that campaigns and prints 'leader' when it leads. */
function replicaProcess(cluster: EtcdCluster, name: string): { proc: ChildProcess; leads: () => boolean } {
  const script = `
import { tlsClient } from ${JSON.stringify(here('./etcd-kit.js'))};
import { createEtcdLeadership } from ${JSON.stringify(here('./etcd-leadership.js'))};
const client = tlsClient(${JSON.stringify(cluster.endpoints)}, ${JSON.stringify(cluster.tls)});
const l = createEtcdLeadership({ client, prefix: '/lead-test/', name: 'ca-singletons', candidate: ${JSON.stringify(name)}, ttlSeconds: 2, retryMs: 200 });
l.onChange((v) => process.stdout.write(v ? 'leader\\n' : 'follower\\n'));
setInterval(() => {}, 1000);`;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  let leading = false;
  proc.stdout!.on('data', (d: Buffer) => {
    for (const line of String(d).split('\n')) if (line) leading = line === 'leader';
  });
  return { proc, leads: () => leading && proc.exitCode === null && proc.signalCode === null };
}

describe('store: singleton leadership through an etcd lease', function () {
  this.timeout(120_000);
  let cluster: EtcdCluster;
  before(async () => {
    cluster = await startEtcdCluster({ members: 1 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it('elects one of two replica processes, and moves to the other when the leader is SIGKILLed', async () => {
    const rs = [replicaProcess(cluster, 'a'), replicaProcess(cluster, 'b')];
    try {
      await eventually(() => rs.some((r) => r.leads()), 'a leader');
      assert.equal(rs.filter((r) => r.leads()).length, 1);
      const first = rs.findIndex((r) => r.leads());
      rs[first]!.proc.kill('SIGKILL');
      // Its lease is no longer kept alive: after the TTL, the other campaign wins.
      await eventually(() => rs[1 - first]!.leads(), 'the other replica takes over');
    } finally {
      for (const r of rs) r.proc.kill('SIGKILL');
    }
  });

  it('hands over at once when the leader resigns (clean stop)', async () => {
    const clients = [cluster.client(), cluster.client()];
    const ls: Leadership[] = clients.map((client, i) =>
      createEtcdLeadership({ client, prefix: '/lead-resign/', name: 'ca-singletons', candidate: `r${i}`, ttlSeconds: 30, retryMs: 200 }),
    );
    try {
      await eventually(() => ls.some((l) => l.isLeader()), 'a leader');
      const first = ls.findIndex((l) => l.isLeader());
      await ls[first]!.close();
      // A TTL of 30 s: taking over within the bounded wait proves the resignation, not an expiry.
      await eventually(() => ls[1 - first]!.isLeader(), 'the other leads');
    } finally {
      for (const l of ls) await l.close();
      for (const c of clients) c.close();
    }
  });

  it('stops leading when etcd goes away, and leads again when it is back', async () => {
    const client = cluster.client();
    const l = createEtcdLeadership({
      client,
      prefix: '/lead-down/',
      name: 'ca-singletons',
      candidate: 'only',
      ttlSeconds: 2,
      retryMs: 200,
    });
    const seen: boolean[] = [];
    l.onChange((v) => seen.push(v));
    try {
      await eventually(() => l.isLeader(), 'leads');
      await cluster.kill(0);
      await eventually(() => !l.isLeader(), 'stops leading once the lease is lost');
      await cluster.restart(0);
      await eventually(() => l.isLeader(), 'leads again');
      assert.deepEqual(seen, [true, false, true]);
    } finally {
      await l.close();
      client.close();
    }
  });
});
