import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { createRecordingLogger } from '../observability/index.js';
import { createConnectionGuard, type ConnectionGuard, type GuardReason } from './index.js';

/** Timers the test fires by hand. */
function manualTimers() {
  const pending = new Map<number, () => void>();
  let n = 0;
  return {
    setTimeout: (fn: () => void) => (pending.set(++n, fn), n),
    clearTimeout: (h: unknown) => void pending.delete(h as number),
    fireAll() {
      const fns = [...pending.values()];
      pending.clear();
      for (const f of fns) f();
    },
    pending: () => pending.size,
  };
}

const until = async (what: string, fn: () => boolean) => {
  for (let i = 0; i < 1000 && !fn(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(fn(), what);
};

describe('net: connection guard on a real listener', function () {
  this.timeout(20_000);
  let server: Server;
  let guard: ConnectionGuard;
  let timers: ReturnType<typeof manualTimers>;
  let log: ReturnType<typeof createRecordingLogger>;
  let closed: GuardReason[];
  const clients: Socket[] = [];
  let served: Socket[];

  async function start(limits: { maxConnections: number; maxPerSource: number }) {
    timers = manualTimers();
    log = createRecordingLogger();
    closed = [];
    served = [];
    guard = createConnectionGuard({
      listener: 'test',
      limits: { ...limits, firstRequestTimeoutMs: 1_000 },
      log,
      timers,
      stats: { closed: (r) => void closed.push(r) },
    });
    server = createServer((s) => {
      // Read as a real server would, so that a peer's FIN is seen.
      if (guard.admit(s)) served.push(s.resume());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  }
  const port = () => (server.address() as { port: number }).port;
  const dial = (localAddress = '127.0.0.1') =>
    new Promise<Socket>((resolve) => {
      // A refused connection may be reset before the client sees it connected.
      const c = connect({ port: port(), host: '127.0.0.1', localAddress }, () => resolve(c));
      c.on('error', () => resolve(c));
      clients.push(c);
    });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    guard.close();
    await new Promise((r) => server.close(r));
  });

  it('refuses connections past the listener cap, counts each, and logs a burst as one line plus a summary', async () => {
    await start({ maxConnections: 3, maxPerSource: 100 });
    for (let i = 0; i < 3; i++) await dial();
    await until('three served', () => served.length === 3);
    for (const s of served) guard.requested(s);
    const refused = await Promise.all(Array.from({ length: 20 }, () => dial()));
    await until('twenty refused', () => closed.length === 20);
    assert.deepEqual(new Set(closed), new Set(['listener-limit']));
    await until('refused sockets closed by the server', () => refused.every((c) => c.destroyed));
    assert.equal(guard.open(), 3);
    const lines = () => log.lines.filter((l) => l.msg === 'connections refused');
    assert.equal(lines().length, 1, 'one line for the start of the burst');
    timers.fireAll();
    assert.equal(lines().length, 2);
    assert.equal(lines()[1]!.fields.count, 19, 'the summary counts the rest');
    // A slot freed is a slot for the next one.
    clients[0]!.destroy();
    await until('slot freed', () => guard.open() === 2);
    await dial();
    await until('served again', () => served.length === 4);
  });

  it('caps each source address apart from the others', async () => {
    await start({ maxConnections: 100, maxPerSource: 2 });
    for (let i = 0; i < 3; i++) await dial('127.0.0.1');
    await until('one refused', () => closed.length === 1);
    assert.deepEqual(closed, ['source-limit']);
    await dial('127.0.0.2');
    await dial('127.0.0.2');
    await until('another source served', () => served.length === 4);
    assert.equal(log.lines.find((l) => l.msg === 'connections refused')?.fields.source, '127.0.0.1');
  });

  it('closes a connection that makes no request by the deadline, and spares one that did', async () => {
    await start({ maxConnections: 100, maxPerSource: 100 });
    const idle = await dial();
    const busy = await dial();
    await until('both served', () => served.length === 2);
    guard.requested({ remoteAddress: '127.0.0.1', remotePort: busy.localPort });
    timers.fireAll();
    await until('idle one closed', () => idle.destroyed || idle.readableEnded || closed.length === 1);
    assert.deepEqual(closed, ['no-request']);
    await until('open count', () => guard.open() === 1);
    assert.equal(busy.destroyed, false);
    assert.equal(log.lines.filter((l) => l.msg === 'idle connections closed').length, 1);
  });
});
