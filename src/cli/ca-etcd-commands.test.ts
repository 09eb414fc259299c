// meshpilot ca init|show|bundle|revoke --ca-store etcd: the CA replicas share, reached without a
// running replica, against a real etcd (one member, TLS with client certificates).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, openSharedCa } from '../ca/index.js';
import { mustSpiffeId } from '../identity/index.js';
import { silentLogger } from '../observability/index.js';
import { parseSpiffeBundle } from '../federation/index.js';
import { createEtcdCaStateStore, createSealer } from '../store/index.js';
import { etcdFlags, startEtcdCluster, type EtcdCluster } from '../store/etcd-kit.js';
import { registerCaCommands } from './ca-commands.js';
import { runCli } from './testing.js';

describe('cli: meshpilot ca --ca-store etcd', function () {
  this.timeout(60_000);
  let cluster: EtcdCluster;
  let dir: string;
  let keyFile: string;
  const sealingKey = randomBytes(32);
  before(async () => {
    cluster = await startEtcdCluster({ members: 1 });
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-ca-etcd-'));
    keyFile = join(dir, 'ca-store.key');
    writeFileSync(keyFile, sealingKey, { mode: 0o600 });
  });
  after(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  // Each test its own prefix: its own mesh in the same etcd.
  const flags = (prefix: string) => ['--ca-store', 'etcd', '--ca-store-key', keyFile, ...etcdFlags(cluster), '--etcd-prefix', prefix];
  const run = (...args: string[]) => runCli((program, io) => registerCaCommands(program, { log: silentLogger, write: io.write }), ...args);

  /** The shared CA as a replica opens it, on its own client. */
  async function asReplica<T>(prefix: string, f: (ca: Awaited<ReturnType<typeof openSharedCa>>) => Promise<T>): Promise<T> {
    const client = cluster.client();
    const store = createEtcdCaStateStore({
      client,
      prefix,
      sealer: createSealer(sealingKey),
      sealerSource: '--ca-store-key test',
      endpoints: cluster.endpoints,
    });
    const opened = await openSharedCa({ store, log: silentLogger });
    try {
      return await f(opened);
    } finally {
      if (opened.ok) opened.value.ca.close();
      await store.flush();
      store.close();
      client.close();
    }
  }

  it('refuses an empty store for show and revoke, naming it and the fix, then creates the CA with init and reuses it after', async () => {
    const p = '/empty/';
    for (const args of [
      ['ca', 'show'],
      ['ca', 'revoke', '--serial', 'ab'],
      ['ca', 'bundle'],
    ]) {
      const r = await run(...args, ...flags(p));
      assert.equal(r.exitCode, 1, args.join(' '));
      assert.match(
        r.err,
        /no CA in etcd https:\/\/127\.0\.0\.1:\d+ key \/empty\/ca\/state yet: create it with meshpilot ca init --ca-store etcd/,
      );
    }
    const init = await run('ca', 'init', '--trust-domain', 'example.org', ...flags(p));
    assert.equal(init.exitCode, 0, init.err);
    assert.match(
      init.out,
      /^initialized self-signed CA in etcd .* key \/empty\/ca\/state\ntrust domain: example\.org\nroot: O=example\.org/m,
    );
    const again = await run('ca', 'init', '--trust-domain', 'example.org', ...flags(p));
    assert.equal(again.exitCode, 0, again.err);
    assert.match(again.out, /^reused the existing self-signed CA in etcd .*\(nothing changed; its root was kept\)/);
    const other = await run('ca', 'init', '--trust-domain', 'other.org', ...flags(p));
    assert.equal(other.exitCode, 1);
    assert.match(other.err, /configured for trust domain other\.org, but etcd .* holds the CA of trust domain example\.org/);
    // The replicas' view: the CA the command made.
    const td = await asReplica(p, (o) => Promise.resolve(o.ok ? o.value.ca.trustDomain : o.error.message));
    assert.equal(td, 'example.org');
  });

  it("revokes a certificate a replica issued, and shows it revoked; the bundle is the replicas' roots", async () => {
    const p = '/revoke/';
    assert.equal((await run('ca', 'init', ...flags(p))).exitCode, 0);
    const issued = await asReplica(p, async (o) => {
      assert.ok(o.ok, o.ok ? '' : o.error.message);
      const svid = o.value.ca.signSvid({
        spiffeId: mustSpiffeId('spiffe://cluster.local/ns/a/sa/b'),
        publicKey: generateKeyPair('ec-p256').publicKey,
      });
      assert.ok(svid.ok);
      return { serial: svid.value.serialHex, rootPem: o.value.ca.trustBundle().rootsPem[0]! };
    });
    const r = await run('ca', 'revoke', '--serial', issued.serial, ...flags(p));
    assert.equal(r.exitCode, 0, r.err);
    assert.match(
      r.out,
      new RegExp(`^revoked ${issued.serial} \\(spiffe://cluster\\.local/ns/a/sa/b\\) in etcd; every replica pushes the new CRL`),
    );
    const show = await run('ca', 'show', '--crl', ...flags(p));
    assert.equal(show.exitCode, 0, show.err);
    assert.match(show.out, new RegExp(`^  ${issued.serial} spiffe://cluster\\.local/ns/a/sa/b revoked `, 'm'));
    assert.match(show.out, /-----BEGIN X509 CRL-----/);
    const seen = await asReplica(p, (o) => Promise.resolve(o.ok ? o.value.ca.status().revoked.map((x) => x.serialHex) : []));
    assert.deepEqual(seen, [issued.serial]);
    const unknown = await run('ca', 'revoke', '--serial', 'abcdef', ...flags(p));
    assert.equal(unknown.exitCode, 1);
    assert.match(unknown.err, /no unexpired certificate with serial abcdef was issued by this CA/);
    const b = await run('ca', 'bundle', ...flags(p));
    assert.equal(b.exitCode, 0, b.err);
    const bundle = parseSpiffeBundle(b.out);
    assert.ok(bundle.ok);
    assert.deepEqual(bundle.value.rootsPem, [issued.rootPem]);
  });

  it('issues an SVID whose record reaches etcd before it returns, so a replica can revoke it', async () => {
    const p = '/issue/';
    assert.equal((await run('ca', 'init', ...flags(p))).exitCode, 0);
    const out = join(dir, 'issued');
    const r = await run('ca', 'issue', '--namespace', 'a', '--service-account', 'b', '--out', out, '--ttl', '1h', ...flags(p));
    assert.equal(r.exitCode, 0, r.err);
    const serial = /^serial: ([0-9a-f]+)$/m.exec(r.out)?.[1];
    assert.ok(serial, r.out);
    assert.match(readFileSync(join(out, 'cert-chain.pem'), 'utf8'), /BEGIN CERTIFICATE/);
    const revoked = await asReplica(p, async (o) => {
      assert.ok(o.ok, o.ok ? '' : o.error.message);
      const v = await o.value.ca.revoke(serial);
      return v.ok ? v.value.spiffeId : v.error.message;
    });
    assert.equal(revoked, 'spiffe://cluster.local/ns/a/sa/b');
    const reserved = await run(
      'ca',
      'issue',
      '--spiffe-id',
      'spiffe://cluster.local/ns/istio-system/sa/meshpilot',
      '--out',
      out,
      ...flags(p),
    );
    assert.equal(reserved.exitCode, 1);
    assert.match(reserved.err, /is reserved for the control plane/);
  });

  it('names the flags when the location is missing, doubled or incomplete', async () => {
    const neither = await run('ca', 'show');
    assert.equal(neither.exitCode, 1);
    assert.match(neither.err, /give --state-dir DIR, or --ca-store etcd with --ca-store-key and the --etcd-\* flags/);
    const both = await run('ca', 'show', '--state-dir', dir, ...flags('/x/'));
    assert.equal(both.exitCode, 1);
    assert.match(both.err, /--state-dir: not used with --ca-store etcd/);
    const noKey = await run('ca', 'init', '--ca-store', 'etcd', '--etcd-endpoints', cluster.endpoints[0]!);
    assert.equal(noKey.exitCode, 1);
    assert.match(noKey.err, /--ca-store etcd: needs --ca-store-key FILE/);
  });
});
