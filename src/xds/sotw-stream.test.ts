import assert from 'node:assert/strict';
import { ClusterLoadAssignment, DiscoveryRequest, DiscoveryResponse, TypeUrl } from '../proto/index.js';
import { createRecordingLogger } from '../observability/index.js';
import { createSnapshot, type Snapshot } from '../snapshot/index.js';
import { testCluster, testEndpoints } from '../snapshot/test-resources.js';
import { unwrap } from '../lib/index.js';
import { SotwStream } from './sotw-stream.js';
import { defaultLimits, StreamError, type ProxyInfo } from './types.js';

const proxy: ProxyInfo = {
  streamId: 1,
  nodeId: 'sidecar~127.0.0.11~a.ns~ns.svc.cluster.local',
  cluster: 'a',
  peer: 'test',
  protocol: 'sotw',
  service: 'ads',
  userAgent: '',
};

function setup() {
  const sent: DiscoveryResponse[] = [];
  const events: string[] = [];
  const log = createRecordingLogger();
  const stream = new SotwStream({
    proxy: () => proxy,
    send: (b) => sent.push(DiscoveryResponse.decode(b)),
    log,
    limits: defaultLimits,
    hooks: {
      onAck: (_p, t, v) => events.push(`ack ${t} ${v}`),
      onNack: (_p, t, v, e) => events.push(`nack ${t} ${v} ${e}`),
    },
  });
  const req = (p: Partial<DiscoveryRequest>) => stream.onRequest(DiscoveryRequest.fromPartial({ typeUrl: TypeUrl.Cluster, ...p }));
  return { sent, events, log, stream, req };
}

const snap = (...rs: Parameters<typeof createSnapshot>[0]): Snapshot => unwrap(createSnapshot(rs));

describe('SotwStream', () => {
  it('answers a wildcard request with every resource of the type, once per content version', () => {
    const { sent, req, stream } = setup();
    stream.onSnapshot(snap(testCluster('a'), testCluster('b')));
    req({});
    assert.equal(sent.length, 1);
    assert.deepEqual(
      sent[0]!.resources.map((r) => r.typeUrl),
      [TypeUrl.Cluster, TypeUrl.Cluster],
    );
    assert.equal(sent[0]!.typeUrl, TypeUrl.Cluster);
    assert.notEqual(sent[0]!.nonce, '');
    // The same content again is not pushed again.
    stream.onSnapshot(snap(testCluster('a'), testCluster('b')));
    assert.equal(sent.length, 1);
    stream.onSnapshot(snap(testCluster('a'), testCluster('b', 9090)));
    assert.equal(sent.length, 2);
    assert.notEqual(sent[1]!.versionInfo, sent[0]!.versionInfo);
    assert.notEqual(sent[1]!.nonce, sent[0]!.nonce);
  });

  it('tells an ACK from a NACK and never resends the rejected version', () => {
    const { sent, events, req, stream, log } = setup();
    stream.onSnapshot(snap(testCluster('a')));
    req({});
    const v1 = sent[0]!;
    req({ versionInfo: v1.versionInfo, responseNonce: v1.nonce });
    assert.deepEqual(events, [`ack ${TypeUrl.Cluster} ${v1.versionInfo}`]);

    stream.onSnapshot(snap(testCluster('a', 1)));
    const v2 = sent[1]!;
    req({ versionInfo: v1.versionInfo, responseNonce: v2.nonce, errorDetail: { code: 3, message: 'bad port', details: [] } });
    assert.equal(events[1], `nack ${TypeUrl.Cluster} ${v2.versionInfo} bad port`);
    const warn = log.lines.find((l) => l.msg === 'config rejected by proxy');
    assert.equal(warn?.fields.error, 'bad port');
    assert.deepEqual(warn?.fields.resources, ['a']);
    // The same rejected content arrives again (e.g. an unrelated rebuild): not resent.
    stream.onSnapshot(snap(testCluster('a', 1)));
    assert.equal(sent.length, 2);
    // A fix is sent.
    stream.onSnapshot(snap(testCluster('a', 2)));
    assert.equal(sent.length, 3);
  });

  it('ignores a request with a stale or unknown nonce: neither ACK nor NACK, no response', () => {
    const { sent, events, req, stream } = setup();
    stream.onSnapshot(snap(testCluster('a')));
    req({});
    stream.onSnapshot(snap(testCluster('a', 1)));
    const [first, second] = sent;
    req({ versionInfo: first!.versionInfo, responseNonce: first!.nonce }); // stale: predates the latest
    req({ versionInfo: second!.versionInfo, responseNonce: 'nonce-never-sent', errorDetail: { code: 3, message: 'x', details: [] } });
    req({ versionInfo: second!.versionInfo, responseNonce: first!.nonce, resourceNames: ['zzz'] });
    assert.deepEqual(events, []);
    assert.equal(sent.length, 2);
  });

  it('logs and ignores an ACK for a version never sent', () => {
    const { sent, events, req, stream, log } = setup();
    stream.onSnapshot(snap(testCluster('a')));
    req({});
    req({ versionInfo: 'forged', responseNonce: sent[0]!.nonce });
    assert.deepEqual(events, []);
    assert.ok(log.lines.some((l) => l.msg === 'ack for unknown version ignored' && l.fields.version === 'forged'));
  });

  it('serves named subscriptions and, for endpoints, sends only what the proxy does not hold', () => {
    const { sent, req, stream } = setup();
    stream.onSnapshot(snap(testEndpoints('x'), testEndpoints('y')));
    const eds = (p: Partial<DiscoveryRequest>) => req({ typeUrl: TypeUrl.ClusterLoadAssignment, ...p });
    eds({ resourceNames: ['x'] });
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.resources.length, 1);
    // xDS "grouping resources into responses": EDS, RDS and SDS responses may carry only what changed.
    eds({ resourceNames: ['x', 'y'], versionInfo: sent[0]!.versionInfo, responseNonce: sent[0]!.nonce });
    assert.equal(sent.length, 2);
    assert.deepEqual(
      sent[1]!.resources.map((r) => ClusterLoadAssignment.decode(r.value).clusterName),
      ['y'],
    );
    // Naming something that does not exist yet sends nothing until it does.
    eds({ resourceNames: ['x', 'y', 'z'], versionInfo: sent[1]!.versionInfo, responseNonce: sent[1]!.nonce });
    assert.equal(sent.length, 2);
    stream.onSnapshot(snap(testEndpoints('x'), testEndpoints('y'), testEndpoints('z')));
    assert.equal(sent.length, 3);
    assert.deepEqual(
      sent[2]!.resources.map((r) => ClusterLoadAssignment.decode(r.value).clusterName),
      ['z'],
    );
    // One endpoint change sends that one resource.
    eds({ resourceNames: ['x', 'y', 'z'], versionInfo: sent[2]!.versionInfo, responseNonce: sent[2]!.nonce });
    stream.onSnapshot(snap(testEndpoints('x'), testEndpoints('y', 9), testEndpoints('z')));
    assert.equal(sent.length, 4);
    assert.deepEqual(
      sent[3]!.resources.map((r) => ClusterLoadAssignment.decode(r.value).clusterName),
      ['y'],
    );
  });

  it('sends clusters and listeners whole, every time', () => {
    const { sent, req, stream } = setup();
    stream.onSnapshot(snap(testCluster('a'), testCluster('b')));
    req({});
    req({ versionInfo: sent[0]!.versionInfo, responseNonce: sent[0]!.nonce });
    stream.onSnapshot(snap(testCluster('a'), testCluster('b', 9)));
    assert.equal(sent[1]!.resources.length, 2);
  });

  it('after a NACK of endpoints, never resends the rejected versions and converges on the next change', () => {
    const { sent, events, req, stream } = setup();
    const eds = (p: Partial<DiscoveryRequest>) => req({ typeUrl: TypeUrl.ClusterLoadAssignment, ...p });
    stream.onSnapshot(snap(testEndpoints('x'), testEndpoints('y')));
    eds({ resourceNames: ['x', 'y'] });
    eds({ resourceNames: ['x', 'y'], versionInfo: sent[0]!.versionInfo, responseNonce: sent[0]!.nonce });
    stream.onSnapshot(snap(testEndpoints('x', 1), testEndpoints('y', 1)));
    eds({ resourceNames: ['x', 'y'], responseNonce: sent[1]!.nonce, errorDetail: { code: 3, message: 'bad x', details: [] } });
    assert.match(events.at(-1)!, /^nack .* bad x$/);
    // The same content again is not resent.
    stream.onSnapshot(snap(testEndpoints('x', 1), testEndpoints('y', 1)));
    assert.equal(sent.length, 2);
    // Envoy may have applied y@1: going back to y@0 must be sent, as must a fix of x.
    stream.onSnapshot(snap(testEndpoints('x', 2), testEndpoints('y')));
    assert.deepEqual(sent[2]!.resources.map((r) => ClusterLoadAssignment.decode(r.value).clusterName).sort(), ['x', 'y']);
  });

  it('shares one response buffer between streams that held the same endpoint set', () => {
    const a = setup();
    const b = setup();
    const s1 = snap(testEndpoints('x'), testEndpoints('y'));
    for (const side of [a, b]) {
      side.stream.onSnapshot(s1);
      side.req({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['x', 'y'] });
    }
    assert.equal(a.sent[0]!.nonce, b.sent[0]!.nonce, 'the very same response');
  });

  it('ignores an unknown type url and keeps serving the others', () => {
    const { sent, req, stream, log } = setup();
    stream.onSnapshot(snap(testCluster('a')));
    req({ typeUrl: 'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig' });
    assert.equal(sent.length, 0);
    assert.ok(log.lines.some((l) => l.msg === 'unknown type url ignored' && l.fields.node === proxy.nodeId));
    req({});
    assert.equal(sent.length, 1);
  });

  it('ends the stream when a request names more resources than the limit', () => {
    const { req } = setup();
    const names = Array.from({ length: 100_000 }, (_, i) => `r${i}`);
    assert.throws(
      () => req({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: names }),
      (e: unknown) => e instanceof StreamError && e.code === 'RESOURCE_EXHAUSTED' && /100000/.test(e.message),
    );
  });

  it('never puts two resources with the same name in one response', () => {
    const r = createSnapshot([testCluster('a'), testCluster('a', 1)]);
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.error, /duplicate resource names: .*Cluster a/);
  });
});
