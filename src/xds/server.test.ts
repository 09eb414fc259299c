import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import {
  AggregatedDiscoveryServiceClient,
  ClusterDiscoveryServiceClient,
  DiscoveryRequest,
  DiscoveryResponse,
  TypeUrl,
} from '../proto/index.js';
import { createRecordingLogger } from '../observability/index.js';
import { createSnapshot, createSnapshotCache } from '../snapshot/index.js';
import { testCluster } from '../snapshot/test-resources.js';
import { unwrap } from '../lib/index.js';
import { createGrpcServer, createXdsServer, listen, MAX_RECEIVE_BYTES, shutdown } from './index.js';

const ADS_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
const node = (id: string) => ({ id, cluster: 'test' });

/** Collects a stream's messages and lets a test wait for the next one with a bound. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function collector<T>(stream: grpc.ClientDuplexStream<any, T>) {
  const got: T[] = [];
  const waiters: (() => void)[] = [];
  let status: grpc.StatusObject | undefined;
  stream.on('data', (m: T) => {
    got.push(m);
    waiters.splice(0).forEach((w) => w());
  });
  stream.on('status', (s: grpc.StatusObject) => {
    status = s;
    waiters.splice(0).forEach((w) => w());
  });
  stream.on('error', () => {});
  const until = async (cond: () => boolean, what: string, ms = 3_000) => {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 50);
      });
    }
  };
  return { got, until, status: () => status };
}

describe('xDS server over gRPC', () => {
  const log = createRecordingLogger();
  const cache = createSnapshotCache({ log });
  const xds = createXdsServer({ snapshots: cache, log });
  const server = createGrpcServer();
  let address = '';
  const clients: grpc.Client[] = [];

  before(async () => {
    xds.register(server);
    address = `127.0.0.1:${await listen(server, '127.0.0.1', 0, grpc.ServerCredentials.createInsecure())}`;
    unwrap(cache.set('good', unwrap(createSnapshot([testCluster('a')]))));
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await shutdown(server, 500);
  });

  const ads = () => {
    const c = new AggregatedDiscoveryServiceClient(address, grpc.credentials.createInsecure());
    clients.push(c);
    return c;
  };
  const raw = () => {
    const Ctor = grpc.makeGenericClientConstructor(
      {
        ads: {
          path: ADS_PATH,
          requestStream: true,
          responseStream: true,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => DiscoveryResponse.decode(b),
        },
      },
      'raw',
    );
    const c = new Ctor(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1 });
    clients.push(c);
    return (c as unknown as { ads(): grpc.ClientDuplexStream<Buffer, DiscoveryResponse> }).ads();
  };

  it('serves a proxy, pushes snapshot changes and records its node', async () => {
    const s = ads().streamAggregatedResources();
    const c = collector(s);
    s.write(DiscoveryRequest.fromPartial({ node: node('good'), typeUrl: TypeUrl.Cluster }));
    await c.until(() => c.got.length === 1, 'first response');
    assert.ok(xds.connected().some((p) => p.nodeId === 'good'));
    s.write(DiscoveryRequest.fromPartial({ typeUrl: TypeUrl.Cluster, versionInfo: c.got[0]!.versionInfo, responseNonce: c.got[0]!.nonce }));
    unwrap(cache.set('good', unwrap(createSnapshot([testCluster('a', 1)]))));
    await c.until(() => c.got.length === 2, 'pushed update');
    assert.notEqual(c.got[1]!.versionInfo, c.got[0]!.versionInfo);
    s.end();
  });

  it('serves the per-type cluster service, where requests may leave type_url empty', async () => {
    const c = new ClusterDiscoveryServiceClient(address, grpc.credentials.createInsecure());
    clients.push(c);
    const s = c.streamClusters();
    const got = collector(s);
    s.write(DiscoveryRequest.fromPartial({ node: node('good') }));
    await got.until(() => got.got.length === 1, 'a CDS response');
    assert.equal(got.got[0]!.typeUrl, TypeUrl.Cluster);
    // A listener request on the cluster service is not served there.
    s.write(DiscoveryRequest.fromPartial({ typeUrl: TypeUrl.Listener }));
    await got.until(
      () => log.lines.some((l) => l.msg === 'unknown type url ignored' && l.fields.typeUrl === TypeUrl.Listener),
      'the log line',
    );
    assert.equal(got.got.length, 1);
    s.end();
  });

  it('refuses a garbled message with INVALID_ARGUMENT, logs it, and keeps serving other streams', async () => {
    const bad = raw();
    const cb = collector(bad);
    bad.write(Buffer.from([0x12, 0x05, 0x01])); // a field that claims 5 bytes and carries 1
    await cb.until(() => cb.status() !== undefined, 'status');
    assert.equal(cb.status()!.code, grpc.status.INVALID_ARGUMENT);
    assert.ok(log.lines.some((l) => l.msg === 'garbled request'));
    await stillServing();
  });

  it('refuses an oversized message and keeps serving', async () => {
    const bad = raw();
    const cb = collector(bad);
    bad.write(Buffer.alloc(MAX_RECEIVE_BYTES + 1024));
    await cb.until(() => cb.status() !== undefined, 'status');
    assert.equal(cb.status()!.code, grpc.status.RESOURCE_EXHAUSTED);
    await stillServing();
  });

  it('refuses a request naming 100,000 resources with a log line naming proxy and type', async () => {
    const s = ads().streamAggregatedResources();
    const c = collector(s);
    const names = Array.from({ length: 100_000 }, (_, i) => `cluster-${i}`);
    s.write(DiscoveryRequest.fromPartial({ node: node('greedy'), typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: names }));
    await c.until(() => c.status() !== undefined, 'status');
    assert.equal(c.status()!.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.ok(log.lines.some((l) => l.msg === 'stream refused' && l.fields.node === 'greedy' && /100000/.test(String(l.fields.reason))));
    await stillServing();
  });

  it('refuses a stream whose first request has no node id', async () => {
    const s = ads().streamAggregatedResources();
    const c = collector(s);
    s.write(DiscoveryRequest.fromPartial({ typeUrl: TypeUrl.Cluster }));
    await c.until(() => c.status() !== undefined, 'status');
    assert.equal(c.status()!.code, grpc.status.INVALID_ARGUMENT);
  });

  it('refuses a 2 MiB node id before logging or keeping it', async () => {
    const s = ads().streamAggregatedResources();
    const c = collector(s);
    const huge = `sidecar~127.0.0.1~${'x'.repeat(2 * 1024 * 1024)}.ns~ns.svc.cluster.local`;
    s.write(DiscoveryRequest.fromPartial({ node: node(huge), typeUrl: TypeUrl.Cluster }));
    await c.until(() => c.status() !== undefined, 'status');
    assert.equal(c.status()!.code, grpc.status.INVALID_ARGUMENT);
    const line = log.lines.find((l) => l.msg === 'stream refused' && /at most 512/.test(String(l.fields.reason)));
    assert.ok(line);
    assert.ok(String(line.fields.node).length < 100, 'the id is not logged whole');
    assert.ok(!xds.connected().some((p) => p.nodeId === huge));
  });

  it('ends a stream with UNAUTHENTICATED when its credential expires, and logs it', async () => {
    const expiring = createXdsServer({
      snapshots: cache,
      log,
      authenticate: async () => ({
        ok: true,
        value: { identity: 'spiffe://cluster.local/ns/a/sa/b', via: 'token', expiresAt: Date.now() + 300 },
      }),
    });
    const s2 = createGrpcServer();
    expiring.register(s2);
    const port = await listen(s2, '127.0.0.1', 0, grpc.ServerCredentials.createInsecure());
    const client = new AggregatedDiscoveryServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      unwrap(cache.set('expiring', unwrap(createSnapshot([testCluster('a')]))));
      const s = client.streamAggregatedResources();
      const c = collector(s);
      s.write(DiscoveryRequest.fromPartial({ node: node('expiring'), typeUrl: TypeUrl.Cluster }));
      await c.until(() => c.got.length > 0, 'the first response');
      await c.until(() => c.status() !== undefined, 'the stream to end at expiry');
      assert.equal(c.status()!.code, grpc.status.UNAUTHENTICATED);
      assert.ok(log.lines.some((l) => l.msg === 'stream ended: credential expired' && l.fields.node === 'expiring'));
    } finally {
      client.close();
      expiring.closeAll();
      await shutdown(s2, 1_000);
    }
  });

  it('closes the connection of a stream ended for a certificate credential (expired) or refused, not of one ended for a token', async () => {
    const closed: { remoteAddress: string; remotePort: number }[] = [];
    let via: 'token' | 'certificate' | 'refused' = 'certificate';
    const server = createXdsServer({
      snapshots: cache,
      log,
      closeConnection: (peer) => void closed.push(peer),
      authenticate: async () =>
        via === 'refused'
          ? { ok: false, error: { kind: 'no-credential', message: 'none' } }
          : { ok: true, value: { identity: 'spiffe://cluster.local/ns/a/sa/b', via, expiresAt: Date.now() + 200 } },
    });
    const s2 = createGrpcServer();
    server.register(s2);
    const port = await listen(s2, '127.0.0.1', 0, grpc.ServerCredentials.createInsecure());
    const client = new AggregatedDiscoveryServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const run = async () => {
      const s = client.streamAggregatedResources();
      const c = collector(s);
      s.write(DiscoveryRequest.fromPartial({ node: node('closing'), typeUrl: TypeUrl.Cluster }));
      await c.until(() => c.status() !== undefined, 'the stream to end');
      return c.status()!.code;
    };
    try {
      unwrap(cache.set('closing', unwrap(createSnapshot([testCluster('a')]))));
      assert.equal(await run(), grpc.status.UNAUTHENTICATED);
      assert.equal(closed.length, 1, 'certificate expired: connection closed');
      assert.equal(closed[0]!.remoteAddress, '127.0.0.1');
      assert.ok(closed[0]!.remotePort > 0);
      via = 'token';
      assert.equal(await run(), grpc.status.UNAUTHENTICATED);
      assert.equal(closed.length, 1, 'token expired: the connection stays (the next stream carries the token again)');
      via = 'refused';
      assert.equal(await run(), grpc.status.UNAUTHENTICATED);
      assert.equal(closed.length, 2, 'refused: connection closed');
    } finally {
      client.close();
      server.closeAll();
      await shutdown(s2, 1_000);
    }
  });

  it('ends a stream that sends no request in time, and logs it', async () => {
    const strict = createXdsServer({ snapshots: cache, log, limits: { firstRequestTimeoutMs: 200 } });
    const s2 = createGrpcServer();
    strict.register(s2);
    const port = await listen(s2, '127.0.0.1', 0, grpc.ServerCredentials.createInsecure());
    const client = new AggregatedDiscoveryServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const s = client.streamAggregatedResources();
      const c = collector(s);
      await c.until(() => c.status() !== undefined, 'the silent stream to be ended');
      assert.equal(c.status()!.code, grpc.status.DEADLINE_EXCEEDED);
      assert.ok(log.lines.some((l) => l.msg === 'stream refused' && /no request within 200 ms/.test(String(l.fields.reason))));
    } finally {
      client.close();
      strict.closeAll();
      await shutdown(s2, 1_000);
    }
  });

  it('refuses a stream above --max-streams with UNAVAILABLE, counts it, and serves again once one closes', async () => {
    const refused: string[] = [];
    const capped = createXdsServer({ snapshots: cache, log, limits: { maxStreams: 2 }, hooks: { onRefused: (r) => refused.push(r) } });
    const s2 = createGrpcServer();
    capped.register(s2);
    const port = await listen(s2, '127.0.0.1', 0, grpc.ServerCredentials.createInsecure());
    const client = new AggregatedDiscoveryServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const open = [client.streamAggregatedResources(), client.streamAggregatedResources()].map((s) => {
        const c = collector(s);
        s.write(DiscoveryRequest.fromPartial({ node: node('good'), typeUrl: TypeUrl.Cluster }));
        return { s, c };
      });
      for (const { c } of open) await c.until(() => c.got.length === 1, 'served within the limit');
      const third = client.streamAggregatedResources();
      const c3 = collector(third);
      third.write(DiscoveryRequest.fromPartial({ node: node('good'), typeUrl: TypeUrl.Cluster }));
      await c3.until(() => c3.status() !== undefined, 'the third stream refused');
      assert.equal(c3.status()!.code, grpc.status.UNAVAILABLE);
      assert.match(c3.status()!.details, /at most 2 streams; connect to another replica/);
      assert.deepEqual(c3.got, []);
      assert.deepEqual(refused, ['UNAVAILABLE']);
      assert.ok(log.lines.some((l) => l.msg === 'stream refused' && /stream limit \(2\)/.test(String(l.fields.reason))));
      open[0]!.s.end();
      await open[0]!.c.until(() => open[0]!.c.status() !== undefined, 'first stream closed');
      await c3.until(() => capped.connected().length === 1, 'a slot free');
      const fourth = client.streamAggregatedResources();
      const c4 = collector(fourth);
      fourth.write(DiscoveryRequest.fromPartial({ node: node('good'), typeUrl: TypeUrl.Cluster }));
      await c4.until(() => c4.got.length === 1, 'served again below the limit');
      fourth.end();
      open[1]!.s.end();
    } finally {
      client.close();
      capped.closeAll();
      await shutdown(s2, 1_000);
    }
  });

  it('ends a stream opened with a client certificate once that certificate is revoked', async () => {
    const byCert = createXdsServer({
      snapshots: cache,
      log,
      authenticate: async () => ({
        ok: true,
        value: { identity: 'spiffe://cluster.local/ns/a/sa/vm', via: 'certificate', serial: 'abc123' },
      }),
    });
    const s2 = createGrpcServer();
    byCert.register(s2);
    const port = await listen(s2, '127.0.0.1', 0, grpc.ServerCredentials.createInsecure());
    const client = new AggregatedDiscoveryServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      unwrap(cache.set('by-cert', unwrap(createSnapshot([testCluster('a')]))));
      const s = client.streamAggregatedResources();
      const c = collector(s);
      s.write(DiscoveryRequest.fromPartial({ node: node('by-cert'), typeUrl: TypeUrl.Cluster }));
      await c.until(() => c.got.length > 0, 'the first response');
      assert.equal(
        byCert.endRevoked((serial) => serial === 'other'),
        0,
        'another serial ends nothing',
      );
      assert.equal(
        byCert.endRevoked((serial) => serial === 'abc123'),
        1,
      );
      await c.until(() => c.status() !== undefined, 'the stream to end');
      assert.equal(c.status()!.code, grpc.status.UNAUTHENTICATED);
      assert.ok(log.lines.some((l) => l.msg === 'stream ended: credential revoked' && l.fields.serial === 'abc123'));
    } finally {
      client.close();
      byCert.closeAll();
      await shutdown(s2, 1_000);
    }
  });

  it('forgets a stream that closes mid-way and logs why', async () => {
    const s = ads().streamAggregatedResources();
    const c = collector(s);
    s.write(DiscoveryRequest.fromPartial({ node: node('leaver'), typeUrl: TypeUrl.Cluster }));
    await c.until(() => xds.connected().some((p) => p.nodeId === 'leaver'), 'connect');
    s.cancel();
    await c.until(() => !xds.connected().some((p) => p.nodeId === 'leaver'), 'disconnect');
    assert.ok(log.lines.some((l) => l.msg === 'proxy disconnected' && l.fields.node === 'leaver'));
    await stillServing();
  });

  async function stillServing() {
    const s = ads().streamAggregatedResources();
    const c = collector(s);
    s.write(DiscoveryRequest.fromPartial({ node: node('good'), typeUrl: TypeUrl.Cluster }));
    await c.until(() => c.got.length === 1, 'a response on a healthy stream');
    s.end();
  }
});
