import assert from 'node:assert/strict';
import { DeltaDiscoveryRequest, DeltaDiscoveryResponse, TypeUrl } from '../proto/index.js';
import { createRecordingLogger } from '../observability/index.js';
import { createSnapshot, type Snapshot } from '../snapshot/index.js';
import { testCluster, testEndpoints } from '../snapshot/test-resources.js';
import { unwrap } from '../lib/index.js';
import { DeltaStream } from './delta-stream.js';
import { defaultLimits, type ProxyInfo } from './types.js';

const proxy: ProxyInfo = { streamId: 1, nodeId: 'n1', cluster: 'c', peer: 'test', protocol: 'delta', service: 'ads', userAgent: '' };
const snap = (...rs: Parameters<typeof createSnapshot>[0]): Snapshot => unwrap(createSnapshot(rs));

function setup() {
  const sent: DeltaDiscoveryResponse[] = [];
  const events: string[] = [];
  const stream = new DeltaStream({
    proxy: () => proxy,
    send: (b) => sent.push(DeltaDiscoveryResponse.decode(b)),
    log: createRecordingLogger(),
    limits: defaultLimits,
    hooks: { onAck: (_p, _t, v) => events.push(`ack ${v}`), onNack: (_p, _t, _v, e, names) => events.push(`nack ${e} ${names.join(',')}`) },
  });
  const req = (p: Partial<DeltaDiscoveryRequest>) =>
    stream.onRequest(DeltaDiscoveryRequest.fromPartial({ typeUrl: TypeUrl.Cluster, ...p }));
  return { sent, events, stream, req };
}

describe('DeltaStream', () => {
  it('sends only what changed and names what was removed', () => {
    const { sent, req, stream } = setup();
    stream.onSnapshot(snap(testCluster('a'), testCluster('b')));
    req({});
    assert.deepEqual(sent[0]!.resources.map((r) => r.name).sort(), ['a', 'b']);
    req({ responseNonce: sent[0]!.nonce });
    stream.onSnapshot(snap(testCluster('a'), testCluster('b', 1), testCluster('c')));
    assert.deepEqual(sent[1]!.resources.map((r) => r.name).sort(), ['b', 'c']);
    stream.onSnapshot(snap(testCluster('b', 1), testCluster('c')));
    assert.deepEqual(sent[2]!.resources, []);
    assert.deepEqual(sent[2]!.removedResources, ['a']);
    stream.onSnapshot(snap(testCluster('b', 1), testCluster('c')));
    assert.equal(sent.length, 3);
  });

  it('does not resend what a reconnecting client already holds', () => {
    const { sent, req, stream } = setup();
    const a = testCluster('a');
    stream.onSnapshot(snap(a, testCluster('b')));
    req({ initialResourceVersions: { a: a.version() } });
    assert.deepEqual(
      sent[0]!.resources.map((r) => r.name),
      ['b'],
    );
  });

  it('after a NACK holds its resources as unknown: never resends the rejected version, converges on the next', () => {
    const { sent, events, req, stream } = setup();
    stream.onSnapshot(snap(testCluster('a')));
    req({});
    req({ responseNonce: sent[0]!.nonce });
    stream.onSnapshot(snap(testCluster('a', 1)));
    req({ responseNonce: sent[1]!.nonce, errorDetail: { code: 3, message: 'rejected', details: [] } });
    assert.deepEqual(events.slice(1), ['nack rejected a']);
    // The rejected version is not sent again, whatever else changes.
    stream.onSnapshot(snap(testCluster('a', 1), testCluster('z')));
    assert.deepEqual(
      sent[2]!.resources.map((r) => r.name),
      ['z'],
    );
    // Envoy may have applied part of the NACKed response, so going back to the old
    // version is sent too: the proxy converges whatever it applied.
    stream.onSnapshot(snap(testCluster('a'), testCluster('z')));
    assert.deepEqual(
      sent[3]!.resources.map((r) => r.name),
      ['a'],
    );
    // And a removal of a resource in an unknown state is announced.
    stream.onSnapshot(snap(testCluster('z')));
    assert.deepEqual(sent[4]!.removedResources, ['a']);
  });

  it('follows named subscriptions and unsubscriptions', () => {
    const { sent, req, stream } = setup();
    stream.onSnapshot(snap(testEndpoints('x'), testEndpoints('y')));
    const eds = (p: Partial<DeltaDiscoveryRequest>) => req({ typeUrl: TypeUrl.ClusterLoadAssignment, ...p });
    eds({ resourceNamesSubscribe: ['x'] });
    assert.deepEqual(
      sent[0]!.resources.map((r) => r.name),
      ['x'],
    );
    eds({ resourceNamesSubscribe: ['y'], responseNonce: sent[0]!.nonce });
    assert.deepEqual(
      sent[1]!.resources.map((r) => r.name),
      ['y'],
    );
    eds({ resourceNamesUnsubscribe: ['x'], responseNonce: sent[1]!.nonce });
    stream.onSnapshot(snap(testEndpoints('x', 1), testEndpoints('y')));
    assert.equal(sent.length, 2);
  });

  it('ignores an ACK for a nonce it never sent', () => {
    const { sent, events, req, stream } = setup();
    stream.onSnapshot(snap(testCluster('a')));
    req({});
    req({ responseNonce: 'never-sent' });
    assert.deepEqual(events, []);
    assert.equal(sent.length, 1);
  });
});
