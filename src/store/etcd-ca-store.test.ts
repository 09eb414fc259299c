import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../ca/index.js';
import type { CaRecord } from '../ca/index.js';
import { createEtcdCaStateStore } from './etcd-ca-store.js';
import { startEtcdCluster } from './etcd-kit.js';
import type { EtcdCluster } from './etcd-kit.js';
import { createSealer, readSealingKeyFile } from './sealing.js';

const keyPem = () => generateKeyPair('ec-p256').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

describe('store: CA state in etcd', function () {
  this.timeout(120_000);
  let cluster: EtcdCluster;
  before(async () => {
    cluster = await startEtcdCluster({ members: 1 });
  });
  after(async () => {
    await cluster?.stop();
  });
  const record = (): CaRecord => ({
    format: 1,
    trustDomain: 'cluster.local',
    mode: 'self-signed',
    issuers: ['root-1'],
    signing: 'root-1',
    crlNumber: 0,
    revoked: [],
    roots: { 'root-1': { certPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', keyPem: keyPem() } },
    tokenKeyPem: keyPem(),
  });
  const open = (prefix: string, key: Buffer, client = cluster.client(), listPageSize?: number) =>
    createEtcdCaStateStore({
      client,
      prefix,
      sealer: createSealer(key),
      sealerSource: '--ca-store-key k.key',
      endpoints: cluster.endpoints,
      ...(listPageSize !== undefined ? { listPageSize } : {}),
    });

  it('never stores a private key in the clear: the raw etcd value holds only sealed keys', async () => {
    const client = cluster.client();
    const prefix = '/raw-check/';
    const r = record();
    try {
      const s = open(prefix, randomBytes(32), client);
      assert.ok((await s.compareAndSwap(undefined, r)).ok);
      const raw = await client.get(`${prefix}ca/state`).string();
      assert.ok(raw);
      assert.doesNotMatch(raw, /PRIVATE KEY/);
      for (const pem of [r.roots['root-1']!.keyPem, r.tokenKeyPem!]) {
        const body = pem.split('\n')[1]!;
        assert.ok(!raw.includes(body), 'no line of the key appears in etcd');
      }
      assert.match(raw, /aes-256-gcm:v1:/);
      const back = await s.load();
      assert.ok(back.ok);
      assert.deepEqual(back.value?.value, r);
      s.close();
    } finally {
      client.close();
    }
  });

  it('refuses to load with another sealing key, naming both fingerprints and the flag', async () => {
    const k1 = randomBytes(32);
    const a = open('/wrong-key/', k1);
    assert.ok((await a.compareAndSwap(undefined, record())).ok);
    const b = open('/wrong-key/', randomBytes(32));
    const r = await b.load();
    assert.ok(!r.ok);
    assert.match(
      r.error.message,
      new RegExp(`sealed with the key of fingerprint ${createSealer(k1).fingerprint}, but --ca-store-key k\\.key has fingerprint`),
    );
    a.close();
    b.close();
  });

  it('reads the sealing key file as raw, hex or base64, and names flag and file when it is not a key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshpilot-sealkey-'));
    try {
      const key = randomBytes(32);
      for (const [name, data] of [
        ['raw', key],
        ['hex', key.toString('hex') + '\n'],
        ['b64', key.toString('base64') + '\n'],
      ] as const) {
        writeFileSync(join(dir, name), data);
        const r = readSealingKeyFile('--ca-store-key', join(dir, name));
        assert.ok(r.ok && r.value.equals(key), name);
      }
      writeFileSync(join(dir, 'short'), 'abc\n');
      const short = readSealingKeyFile('--ca-store-key', join(dir, 'short'));
      assert.ok(!short.ok && short.error.startsWith(`--ca-store-key ${join(dir, 'short')}: expected a 256-bit key`));
      const missing = readSealingKeyFile('--ca-store-key', join(dir, 'nope'));
      assert.ok(!missing.ok && /cannot read it \(no such file\)/.test(missing.error));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports etcd down as unavailable, queues issuance records, and writes them when etcd is back', async () => {
    const client = cluster.client();
    const s = open('/down/', randomBytes(32), client);
    try {
      assert.ok((await s.compareAndSwap(undefined, record())).ok);
      await cluster.kill(0);
      const load = await s.load();
      assert.ok(!load.ok);
      assert.equal(load.error.kind, 'not-ready');
      assert.match(load.error.message, new RegExp(`ca store unreachable \\(load at ${cluster.endpoints[0]!.replace(/\./g, '\\.')}\\)`));
      assert.equal(s.health().reachable, false);
      const rec = { serial: 'beef', issuer: 'root-1', spiffeId: 'spiffe://cluster.local/ns/a/sa/b', notAfter: Date.now() + 60_000 };
      assert.ok(s.appendIssued(rec).ok, 'issuance continues while etcd is away');
      assert.ok(!(await s.flush()).ok);
      assert.equal(s.health().pendingRecords, 1);
      await cluster.restart(0);
      let flushed = await s.flush();
      for (let i = 0; i < 100 && !flushed.ok; i++) {
        await new Promise((r) => setTimeout(r, 200));
        flushed = await s.flush();
      }
      assert.ok(flushed.ok, flushed.ok ? '' : flushed.error.message);
      assert.deepEqual(s.health(), { reachable: true, pendingRecords: 0, lastError: s.health().lastError });
      assert.equal(await client.get('/down/ca/issued/beef').string(), JSON.stringify(rec));
    } finally {
      s.close();
      client.close();
    }
  });

  it('writes a burst of issuance records in batches and reads them back over several pages', async () => {
    const client = cluster.client();
    // Pages of 7: 250 records are read in 36 ranges, all at the first one's revision.
    const s = open('/many/', randomBytes(32), client, 7);
    try {
      assert.ok((await s.compareAndSwap(undefined, record())).ok);
      const serial = (i: number) => (0x1000 + i).toString(16);
      const recs = Array.from({ length: 250 }, (_, i) => ({
        serial: serial(i),
        issuer: 'root-1',
        spiffeId: `spiffe://cluster.local/ns/a/sa/w${i}`,
        notAfter: Date.now() + 60_000,
      }));
      for (const r of recs) assert.ok(s.appendIssued(r).ok);
      const flushed = await s.flush();
      assert.ok(flushed.ok, flushed.ok ? '' : flushed.error.message);
      assert.equal(s.health().pendingRecords, 0);
      const loaded = await s.loadIssued();
      assert.ok(loaded.ok, loaded.ok ? '' : loaded.error.message);
      assert.deepEqual(loaded.value.records.map((r) => r.serial).sort(), recs.map((r) => r.serial).sort());
      assert.deepEqual(loaded.value.skipped, []);
    } finally {
      s.close();
      client.close();
    }
  });
});
