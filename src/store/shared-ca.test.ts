// Several CA replicas on one store: the same CA, revocations and rotations seen by every replica,
// concurrent changes never lost. Runs on the memory store and on a real etcd.
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mustSpiffeId, mustTrustDomain } from '../identity/index.js';
import { createMemoryBacking, createMemoryCaStateStore, generateKeyPair, openSharedCa } from '../ca/index.js';
import type { CaStateStore, CertificateAuthority, SharedCa } from '../ca/index.js';
import { createEtcdCaStateStore } from './etcd-ca-store.js';
import { startEtcdCluster } from './etcd-kit.js';
import type { EtcdCluster } from './etcd-kit.js';
import { createSealer } from './sealing.js';

const ID = mustSpiffeId('spiffe://cluster.local/ns/photo-ns/sa/photo-backend');

interface StoreKind {
  readonly name: string;
  /** A factory of store objects on one fresh backing (one per replica), and its cleanup. */
  open(): Promise<{ replica(): CaStateStore; cleanup(): Promise<void> }>;
}

let cluster: EtcdCluster | undefined;
after(async () => {
  await cluster?.stop();
});

const kinds: StoreKind[] = [
  {
    name: 'memory',
    open() {
      const backing = createMemoryBacking();
      return Promise.resolve({ replica: () => createMemoryCaStateStore(backing), cleanup: () => Promise.resolve() });
    },
  },
  {
    name: 'etcd',
    async open() {
      cluster ??= await startEtcdCluster({ members: 1 });
      const c = cluster;
      const client = c.client();
      const prefix = `/shared-ca-${randomBytes(4).toString('hex')}/`;
      const sealer = createSealer(randomBytes(32));
      return {
        replica: () => createEtcdCaStateStore({ client, prefix, sealer, sealerSource: '--ca-store-key test', endpoints: c.endpoints }),
        cleanup: async () => {
          await client.delete().prefix(prefix);
          client.close();
        },
      };
    },
  },
];

async function open(store: CaStateStore, extra: Partial<Parameters<typeof openSharedCa>[0]> = {}): Promise<SharedCa> {
  const r = await openSharedCa({ store, ...extra });
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return r.value;
}

/** Waits (bounded) until the check passes. */
async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`never happened: ${what}`);
}

const revokedIn = (ca: CertificateAuthority) => new Set(ca.crl().flatMap((c) => c.revokedSerials));

for (const kind of kinds) {
  describe(`shared CA replicas: ${kind.name} store`, function () {
    this.timeout(60_000);
    let h: Awaited<ReturnType<StoreKind['open']>>;
    const opened: CertificateAuthority[] = [];
    const replica = async (extra: Partial<Parameters<typeof openSharedCa>[0]> = {}) => {
      const s = await open(h.replica(), extra);
      opened.push(s.ca);
      return s;
    };
    beforeEach(async () => {
      h = await kind.open();
    });
    afterEach(async () => {
      for (const ca of opened.splice(0)) ca.close();
      await h.cleanup();
    });

    it('gives every replica the same root and token key; an SVID from one verifies with the bundle of another', async () => {
      const [a, b] = await Promise.all([replica(), replica()]);
      assert.equal(a.ca.trustBundle().pem, b.ca.trustBundle().pem, 'both replicas opened at once agree on one root');
      assert.equal(a.tokenKeyPem, b.tokenKeyPem);
      const svid = a.ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
      assert.ok(svid.ok);
      const root = new X509Certificate(b.ca.trustBundle().rootsPem[0]!);
      assert.ok(new X509Certificate(svid.value.certificatePem).verify(root.publicKey));
    });

    it("puts a revocation made through one replica in every replica's CRL, and tells their listeners", async () => {
      const a = await replica();
      const b = await replica();
      let bHeard = 0;
      b.ca.onChange((c) => c.kind === 'crl' && bHeard++);
      const svid = a.ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
      assert.ok(svid.ok);
      const r = await a.ca.revoke(svid.value.serialHex);
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      await eventually(() => revokedIn(b.ca).has(svid.value.serialHex), "the serial in B's CRL");
      assert.ok(bHeard > 0, "B's listeners heard of the new CRL (so B pushes it to its proxies)");
      assert.equal(b.ca.crl()[0]!.crlNumber, a.ca.crl()[0]!.crlNumber, 'both sign the same CRL number');
    });

    it('revokes through one replica a certificate another replica issued', async () => {
      const a = await replica();
      const b = await replica();
      const svid = a.ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
      assert.ok(svid.ok);
      // The issuance record is written behind (etcd): wait until the store holds it.
      const probe = h.replica();
      for (let i = 0; i < 200; i++) {
        const j = await probe.loadIssued();
        if (j.ok && j.value.records.some((x) => x.serial === svid.value.serialHex)) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      probe.close();
      const r = await b.ca.revoke(svid.value.serialHex);
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      await eventually(() => revokedIn(a.ca).has(svid.value.serialHex), "the serial in A's CRL");
    });

    it('loses no revocation when two replicas revoke concurrently', async () => {
      const a = await replica();
      const b = await replica();
      const serials = Array.from({ length: 16 }, (_, i) => {
        const ca = i % 2 === 0 ? a.ca : b.ca;
        const s = ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
        assert.ok(s.ok);
        return { ca, serial: s.value.serialHex };
      });
      const results = await Promise.all(serials.map((x) => x.ca.revoke(x.serial)));
      for (const r of results) assert.ok(r.ok, r.ok ? '' : r.error.message);
      for (const ca of [a.ca, b.ca])
        await eventually(() => serials.every((x) => revokedIn(ca).has(x.serial)), 'all 16 serials revoked everywhere');
    });

    it('runs one root rotation when two replicas start one at once, and both end with the same bundle', async () => {
      const a = await replica();
      const b = await replica();
      const [ra, rb] = await Promise.all([a.ca.rotateRoot('prepare'), b.ca.rotateRoot('prepare')]);
      assert.equal([ra, rb].filter((r) => r.ok).length, 1, 'exactly one prepare wins');
      const lost = [ra, rb].find((r) => !r.ok)!;
      assert.ok(!lost.ok && /already in progress/.test(lost.error.message));
      await eventually(
        () => a.ca.trustBundle().rootsPem.length === 2 && b.ca.trustBundle().pem === a.ca.trustBundle().pem,
        'one bundle of two roots',
      );
      const act = await b.ca.rotateRoot('activate');
      assert.ok(act.ok, act.ok ? '' : act.error.message);
      await eventually(() => a.ca.status().rotation === 'activated', 'A sees the activation');
      assert.equal(a.ca.status().signingCa.fingerprint256, b.ca.status().signingCa.fingerprint256);
    });

    it('refuses a replica of another trust domain, naming both', async () => {
      await replica();
      const r = await openSharedCa({ store: h.replica(), trustDomain: mustTrustDomain('other.example') });
      assert.ok(!r.ok);
      assert.match(
        r.error.message,
        /this replica is configured for trust domain other\.example, but .* holds the CA of trust domain cluster\.local/,
      );
    });
  });
}

describe('shared CA replica while etcd is down', function () {
  this.timeout(120_000);
  let c: EtcdCluster;
  before(async () => {
    c = await startEtcdCluster({ members: 1 });
  });
  after(async () => {
    await c?.stop();
  });

  it('keeps signing from the loaded CA, reports changes as unavailable, and writes again when etcd is back', async () => {
    const client = c.client();
    const store = createEtcdCaStateStore({
      client,
      prefix: '/down/',
      sealer: createSealer(randomBytes(32)),
      sealerSource: '--ca-store-key test',
      endpoints: c.endpoints,
    });
    const { ca } = await open(store);
    try {
      const before = ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
      assert.ok(before.ok);
      await c.kill(0);
      const during = ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
      assert.ok(during.ok, 'issuance continues from the loaded CA');
      const refused = await ca.revoke(before.value.serialHex);
      assert.ok(!refused.ok);
      assert.equal(refused.error.kind, 'not-ready');
      assert.match(refused.error.message, /^ca store unreachable/);
      assert.equal(store.health().reachable, false);
      assert.ok(ca.crl()[0]!.revokedSerials.length === 0, 'nothing half-applied');
      await c.restart(0);
      let r = await ca.revoke(during.value.serialHex);
      for (let i = 0; i < 100 && !r.ok; i++) {
        await new Promise((res) => setTimeout(res, 200));
        r = await ca.revoke(during.value.serialHex);
      }
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      assert.ok(revokedIn(ca).has(during.value.serialHex));
      assert.equal(store.health().reachable, true);
      // The record issued while etcd was away reached the store.
      for (let i = 0; i < 100 && store.health().pendingRecords > 0; i++) await new Promise((res) => setTimeout(res, 100));
      assert.equal(
        await client
          .get(`/down/ca/issued/${during.value.serialHex}`)
          .string()
          .then((v) => v !== null),
        true,
      );
    } finally {
      ca.close();
      client.close();
    }
  });

  it('skips a corrupt or foreign record written under the key, naming it, and keeps serving the last good state', async () => {
    const client = c.client();
    const sealer = createSealer(randomBytes(32));
    const mk = () =>
      createEtcdCaStateStore({ client, prefix: '/corrupt/', sealer, sealerSource: '--ca-store-key test', endpoints: c.endpoints });
    const problems: string[] = [];
    const a = await open(mk());
    const store = mk();
    const b = await open(store);
    try {
      const svid = a.ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
      assert.ok(svid.ok);
      const bundle = b.ca.trustBundle().pem;
      store.watch(
        () => {},
        (p) => problems.push(`${p.key}: ${p.message}`),
      );
      await new Promise((r) => setTimeout(r, 200));
      await client.put('/corrupt/ca/state').value('{"format": 1, "trustDomain": "cluster.local", "mode": "self-signed"}');
      await eventually(() => problems.length > 0, 'the bad record reported');
      assert.match(problems[0]!, /^\/corrupt\/ca\/state: .*issuers must list/);
      assert.equal(b.ca.trustBundle().pem, bundle, 'B keeps its CA');
      assert.ok(b.ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey }).ok, 'and keeps signing');
      // A change cannot be computed from the bad record: refused, naming the key.
      const r = await a.ca.revoke(svid.value.serialHex);
      assert.ok(!r.ok);
      assert.match(r.error.message, /\/corrupt\/ca\/state/);
    } finally {
      a.ca.close();
      b.ca.close();
      store.close();
      client.close();
    }
  });
});
