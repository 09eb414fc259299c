import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createStreamWriter, createWriteBudget, type Reservation } from './write-budget.js';

describe('xds: write budget', () => {
  it('grants in order while the bytes fit, holds the rest, and lets a write larger than the bound go alone', () => {
    const b = createWriteBudget({ maxBytes: 100, stallMs: 60_000 });
    const started: string[] = [];
    const held = new Map<string, Reservation>();
    const ask = (name: string, bytes: number) => b.reserve(bytes, (r) => (started.push(name), held.set(name, r)));
    ask('a', 60);
    ask('b', 40);
    ask('c', 10);
    ask('d', 5);
    assert.deepEqual(started, ['a', 'b'], 'c waits although it would fit: first come, first served');
    assert.equal(b.inFlight(), 100);
    assert.equal(b.waiting(), 2);
    held.get('a')!.release();
    assert.deepEqual(started, ['a', 'b', 'c', 'd']);
    held.get('b')!.release();
    held.get('c')!.release();
    held.get('d')!.release();
    assert.equal(b.inFlight(), 0);
    ask('huge', 1_000);
    assert.deepEqual(started.at(-1), 'huge', 'nothing else in flight: a write over the bound still goes');
    ask('after', 1);
    assert.equal(started.at(-1), 'huge');
    held.get('huge')!.release();
    held.get('huge')!.release(); // idempotent: given back once
    assert.equal(started.at(-1), 'after');
    assert.equal(b.inFlight(), 1);
  });

  it('forgets a waiting reservation given up, and a write whose stream stopped reading stops counting after stallMs', async () => {
    const stalls: number[] = [];
    const b = createWriteBudget({ maxBytes: 10, stallMs: 30, onStall: (n) => stalls.push(n) });
    const started: string[] = [];
    b.reserve(10, () => started.push('stuck'));
    const gone = b.reserve(5, () => started.push('gone'));
    // 'next' completes as soon as it starts, so it never stalls itself.
    b.reserve(5, (r) => (started.push('next'), r.release()));
    gone.release();
    assert.equal(b.waiting(), 1);
    assert.deepEqual(started, ['stuck']);
    for (let i = 0; i < 200 && started.length < 2; i++) await sleep(10);
    assert.deepEqual(started, ['stuck', 'next'], 'the stalled write no longer holds the others back');
    assert.deepEqual(stalls, [10]);
    assert.equal(b.inFlight(), 0);
  });

  it('writes a stream in order, holds what does not fit, and gives back what it holds when the stream closes', () => {
    const b = createWriteBudget({ maxBytes: 6, stallMs: 60_000 });
    const writes: { bytes: string; done: () => void }[] = [];
    const w = createStreamWriter((bytes, done) => writes.push({ bytes: bytes.toString(), done }), b);
    w.send(Buffer.from('cds'));
    w.send(Buffer.from('eds'));
    w.send(Buffer.from('lds'));
    assert.deepEqual(
      writes.map((x) => x.bytes),
      ['cds', 'eds'],
      'lds waits until the bytes before it are taken',
    );
    writes[0]!.done();
    assert.deepEqual(
      writes.map((x) => x.bytes),
      ['cds', 'eds', 'lds'],
    );
    assert.equal(b.inFlight(), 6);
    w.send(Buffer.from('rds'));
    assert.equal(b.waiting(), 1);
    w.close();
    assert.equal(b.inFlight(), 0, 'what the closed stream held is given back');
    writes[1]!.done(); // the call's callback after the stream ended changes nothing
    assert.equal(b.inFlight(), 0);
    assert.equal(writes.length, 3, 'what waited is dropped');
    w.send(Buffer.from('late'));
    assert.equal(writes.length, 3, 'nothing is written after close');
  });

  it('lets other streams write while one stream waits for its proxy to read', () => {
    const b = createWriteBudget({ maxBytes: 8, stallMs: 60_000 });
    const written: string[] = [];
    const slow = createStreamWriter((bytes) => written.push(`slow:${bytes.toString()}`), b);
    const fast = createStreamWriter((bytes, done) => (written.push(`fast:${bytes.toString()}`), done()), b);
    slow.send(Buffer.from('1234'));
    fast.send(Buffer.from('abcd'));
    fast.send(Buffer.from('efgh'));
    assert.deepEqual(written, ['slow:1234', 'fast:abcd', 'fast:efgh']);
    assert.equal(b.inFlight(), 4, 'only the slow write is still held');
  });
});
