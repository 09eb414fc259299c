import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startEtcdCluster, tlsClient } from './etcd-kit.js';
import type { EtcdCluster } from './etcd-kit.js';

describe('store: etcd test kit (real etcd, TLS, client certificates)', function () {
  this.timeout(120_000);

  describe('one member', () => {
    let cluster: EtcdCluster;
    before(async () => {
      cluster = await startEtcdCluster({ members: 1 });
    });
    after(async () => {
      await cluster?.stop();
    });

    it('serves put and get over TLS with a client certificate', async () => {
      assert.equal(cluster.endpoints.length, 1);
      assert.match(cluster.endpoints[0]!, /^https:\/\/127\.0\.0\.1:\d+$/);
      const c = cluster.client();
      try {
        await c.put('kit/hello').value('world');
        assert.equal(await c.get('kit/hello').string(), 'world');
      } finally {
        c.close();
      }
    });

    it('refuses a client certificate from a CA it does not trust', async () => {
      const c = tlsClient(cluster.endpoints, cluster.foreignClientTls());
      try {
        await assert.rejects(c.get('kit/hello').string(), (e: Error) => {
          assert.doesNotMatch(e.message, /world/);
          return true;
        });
      } finally {
        c.close();
      }
    });

    it('removes its temp dir on stop', async () => {
      const other = await startEtcdCluster({ members: 1 });
      assert.ok(existsSync(other.dir));
      await other.stop();
      assert.ok(!existsSync(other.dir));
    });
  });

  describe('three members', () => {
    let cluster: EtcdCluster;
    before(async () => {
      cluster = await startEtcdCluster({ members: 3 });
    });
    after(async () => {
      await cluster?.stop();
    });

    it('keeps serving reads and writes with one member killed, and takes it back', async () => {
      assert.equal(cluster.endpoints.length, 3);
      const c = cluster.client([1, 2]);
      try {
        await c.put('kit/before').value('1');
        await cluster.kill(0);
        await c.put('kit/after').value('2');
        assert.equal(await c.get('kit/before').string(), '1');
        assert.equal(await c.get('kit/after').string(), '2');
      } finally {
        c.close();
      }
      await cluster.restart(0);
      const c0 = cluster.client([0]);
      try {
        assert.equal(await c0.get('kit/after').string(), '2', 'the restarted member caught up');
      } finally {
        c0.close();
      }
    });
  });
});
