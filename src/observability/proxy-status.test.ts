import assert from 'node:assert/strict';
import { createManualClock } from '../lib/index.js';
import { createProxyStatusTracker } from './proxy-status.js';

describe('proxy status tracker', () => {
  const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';
  const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
  const types = [
    { typeUrl: CDS, name: 'cds' },
    { typeUrl: LDS, name: 'lds' },
  ];
  const p = {
    nodeId: 'sidecar~127.0.0.12~photo-backend.photo-ns~photo-ns.svc.cluster.local',
    identity: 'spiffe://cluster.local/ns/photo-ns/sa/photo-backend',
  };

  it('walks a type through NOT SENT, STALE (with how long), SYNCED, NACKED and back to SYNCED', () => {
    const clock = createManualClock();
    const t = createProxyStatusTracker({ clock, types });
    t.onConnect(p);
    const type = (url: string) => t.get(p.nodeId)!.types.find((x) => x.typeUrl === url)!;
    assert.equal(type(LDS).status, 'NOT SENT');
    t.onSend(p, LDS, 'v1', ['inbound|9080', 'outbound_http']);
    clock.advance(1500);
    assert.equal(type(LDS).status, 'STALE');
    assert.equal(type(LDS).pendingMs, 1500);
    t.onAck(p, LDS, 'v1');
    assert.equal(type(LDS).status, 'SYNCED');
    assert.deepEqual(type(LDS).acked, { version: 'v1', at: clock.now(), sentAt: clock.now() - 1500 });
    assert.equal(type(CDS).status, 'NOT SENT', 'types are independent');

    t.onSend(p, LDS, 'v2', ['inbound|9080', 'inbound|15001', 'outbound_http']);
    t.onNack(p, LDS, 'v2', 'Error adding/updating listener(s) inbound|15001: duplicate address', [
      'inbound|9080',
      'inbound|15001',
      'outbound_http',
    ]);
    const nacked = type(LDS);
    assert.equal(nacked.status, 'NACKED');
    assert.equal(nacked.acked?.version, 'v1', 'the last accepted version is kept');
    assert.deepEqual(nacked.nack?.resources, [{ name: 'inbound|15001' }], 'only the resources Envoy named');
    assert.match(nacked.nack!.error, /duplicate address/);

    t.onSend(p, LDS, 'v3', ['inbound|9080', 'outbound_http']);
    assert.equal(type(LDS).status, 'STALE');
    t.onAck(p, LDS, 'v3');
    assert.equal(type(LDS).status, 'SYNCED');
    assert.equal(type(LDS).nack?.version, 'v2', 'the last NACK stays visible');
  });

  it('names every resource of a NACK when Envoy names none, and asks the resolver for their origin', () => {
    const t = createProxyStatusTracker({
      clock: createManualClock(),
      types,
      resolve: (_n, _t, name) => (name === 'a' ? { kind: 'Service', namespace: 'ns', name: 'svc', at: 'mesh.yaml:12' } : undefined),
    });
    t.onConnect(p);
    t.onSend(p, CDS, 'v1', ['a', 'b']);
    t.onNack(p, CDS, 'v1', 'something went wrong', ['a', 'b']);
    t.onNack(p, CDS, 'v1', 'x'.repeat(100_000), ['a', 'b']);
    assert.ok(t.get(p.nodeId)!.types[0]!.nack!.error.length <= 4097, 'a huge message is kept bounded');
    assert.deepEqual(t.get(p.nodeId)!.types[0]!.nack?.resources, [
      { name: 'a', origin: { kind: 'Service', namespace: 'ns', name: 'svc', at: 'mesh.yaml:12' } },
      { name: 'b' },
    ]);
  });

  it('forgets a proxy when its last stream goes, and ignores hooks for unknown proxies', () => {
    const t = createProxyStatusTracker({ clock: createManualClock(), types });
    t.onConnect(p);
    t.onConnect(p); // a second stream of the same node (per-type services)
    t.onDisconnect(p);
    assert.equal(t.size(), 1);
    t.onDisconnect(p);
    assert.equal(t.size(), 0);
    assert.equal(t.get(p.nodeId), undefined);
    t.onSend(p, LDS, 'v1', []);
    t.onAck(p, LDS, 'v1');
    assert.equal(t.size(), 0, 'late hooks do not recreate an entry');
  });
});
