import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { addEtcdConnectionOptions, connectEtcd, DEFAULT_ETCD_PREFIX, parseEtcdConnection } from './index.js';
import type { EtcdConnectionConfig } from './index.js';
import { freeLoopbackPort, startEtcdCluster } from './etcd-kit.js';
import type { EtcdCluster } from './etcd-kit.js';

const mustConfig = (r: ReturnType<typeof parseEtcdConnection>): EtcdConnectionConfig => {
  if (!r.ok) throw new Error(r.error);
  assert.ok(r.value);
  return r.value;
};

describe('store: etcd connection flags', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-etcdconn-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('registers the flags on a command with the default prefix', () => {
    const cmd = addEtcdConnectionOptions(new Command('x'));
    cmd.parse(['--etcd-endpoints', 'https://127.0.0.1:2379', '--etcd-ca', 'ca.pem'], { from: 'user' });
    const o = cmd.opts();
    assert.equal(o.etcdEndpoints, 'https://127.0.0.1:2379');
    assert.equal(o.etcdCa, 'ca.pem');
    assert.equal(o.etcdPrefix, DEFAULT_ETCD_PREFIX);
  });

  it('is off without --etcd-endpoints, and says which flags need it', () => {
    const none = parseEtcdConnection({});
    assert.ok(none.ok && none.value === undefined);
    const stray = parseEtcdConnection({ etcdCa: 'x.pem' });
    assert.ok(!stray.ok && /--etcd-ca needs --etcd-endpoints/.test(stray.error));
  });

  it('names the flag and the file for a missing, unreadable or non-PEM file, all at once', () => {
    const notPem = join(dir, 'not-pem.txt');
    writeFileSync(notPem, 'hello\n');
    const unreadable = join(dir, 'unreadable.pem');
    writeFileSync(unreadable, '-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n', { mode: 0o000 });
    const r = parseEtcdConnection({
      etcdEndpoints: 'https://127.0.0.1:1',
      etcdCa: join(dir, 'missing.pem'),
      etcdCert: notPem,
      etcdKey: dir,
    });
    assert.ok(!r.ok);
    assert.match(r.error, new RegExp(`--etcd-ca ${join(dir, 'missing.pem')}: cannot read it \\(no such file\\)`));
    assert.match(r.error, new RegExp(`--etcd-cert ${notPem}: not a PEM certificate`));
    assert.match(r.error, new RegExp(`--etcd-key ${dir}: cannot read it \\(is a directory\\)`));
    if (process.getuid?.() !== 0) {
      const u = parseEtcdConnection({ etcdEndpoints: 'https://127.0.0.1:1', etcdCa: unreadable });
      assert.ok(!u.ok && /permission denied/.test(u.error));
    }
  });

  it('refuses bad endpoints, half a client pair, a missing CA and a relative prefix', () => {
    const cases: [Parameters<typeof parseEtcdConnection>[0], RegExp][] = [
      [{ etcdEndpoints: 'not a url' }, /--etcd-endpoints: "not a url" is not a URL/],
      [{ etcdEndpoints: 'ftp://h:1' }, /must use https/],
      [{ etcdEndpoints: 'https://h' }, /must be scheme:\/\/host:port/],
      [{ etcdEndpoints: 'https://h:1,http://h:2', etcdCa: '/x' }, /mixes https/],
      [{ etcdEndpoints: 'https://h:1' }, /--etcd-ca: required for https/],
      [{ etcdEndpoints: 'https://h:1', etcdCa: '/x', etcdCert: '/y' }, /--etcd-cert: given without --etcd-key/],
      [{ etcdEndpoints: 'http://h:1', etcdPrefix: 'meshpilot' }, /--etcd-prefix: "meshpilot" must start with '\/'/],
      [{ etcdEndpoints: ',' }, /no endpoint given/],
    ];
    for (const [flags, re] of cases) {
      const r = parseEtcdConnection(flags);
      assert.ok(!r.ok, JSON.stringify(flags));
      assert.match(r.error, re);
    }
    assert.equal(mustConfig(parseEtcdConnection({ etcdEndpoints: 'http://h:1', etcdPrefix: '/a' })).prefix, '/a/');
  });

  describe('against a real etcd', () => {
    let cluster: EtcdCluster;
    before(async () => {
      cluster = await startEtcdCluster({ members: 1 });
    });
    after(async () => {
      await cluster?.stop();
    });
    const flags = (tls = cluster.tls) => ({
      etcdEndpoints: cluster.endpoints.join(','),
      etcdCa: tls.caFile,
      etcdCert: tls.certFile,
      etcdKey: tls.keyFile,
    });

    it('connects over TLS with a client certificate', async () => {
      const r = await connectEtcd(mustConfig(parseEtcdConnection(flags())));
      assert.ok(r.ok, r.ok ? '' : r.error);
      try {
        await r.value.put('/meshpilot/x').value('y');
        assert.equal(await r.value.get('/meshpilot/x').string(), 'y');
      } finally {
        r.value.close();
      }
    });

    it('names the endpoints when the client certificate is refused', async () => {
      const r = await connectEtcd(mustConfig(parseEtcdConnection(flags(cluster.foreignClientTls()))), { callTimeoutMs: 3000 });
      assert.ok(!r.ok);
      assert.match(r.error, new RegExp(`etcd unreachable at ${cluster.endpoints[0]!.replace(/[.]/g, '\\.')}: `));
    });

    it('names every endpoint when nothing listens there', async () => {
      const ports = [await freeLoopbackPort(), await freeLoopbackPort()];
      const eps = ports.map((p) => `https://127.0.0.1:${p}`);
      const r = await connectEtcd(mustConfig(parseEtcdConnection({ ...flags(), etcdEndpoints: eps.join(',') })), { callTimeoutMs: 2000 });
      assert.ok(!r.ok);
      assert.ok(r.error.startsWith(`etcd unreachable at ${eps.join(', ')}: `), r.error);
    });
  });
});
