import assert from 'node:assert/strict';
import { createManualClock } from '../lib/index.js';
import { createProxyStatusTracker } from '../observability/index.js';
import { formatProxy, formatTable } from './status-command.js';

describe('cli: meshpilot status, a proxy whose config is not built', () => {
  const types = [
    { typeUrl: 'type.googleapis.com/envoy.config.cluster.v3.Cluster', name: 'cds' },
    { typeUrl: 'type.googleapis.com/envoy.config.listener.v3.Listener', name: 'lds' },
  ];
  const p = {
    nodeId: 'sidecar~127.0.0.12~photo-backend.photo-ns~photo-ns.svc.cluster.local',
    identity: 'spiffe://cluster.local/ns/photo-ns/sa/photo-backend',
  };

  it('shows a proxy whose config cannot be built (since when, why) until a build succeeds, in the table and in full', () => {
    const clock = createManualClock(Date.parse('2026-01-02T03:04:05.000Z'));
    const t = createProxyStatusTracker({ clock, types });
    t.onConnect(p);
    t.onBuildError('sidecar~unknown', 'ignored: not connected');
    assert.equal(t.get(p.nodeId)!.configError, undefined);
    assert.doesNotMatch(formatTable(t.list()), /CONFIG/, 'the column appears only when a proxy has an error');
    t.onBuildError(p.nodeId, 'duplicate resource names: inbound|8080||');
    clock.advance(5000);
    t.onBuildError(p.nodeId, 'duplicate resource names: inbound|8080||, inbound|8081||');
    const status = t.get(p.nodeId)!;
    assert.deepEqual(status.configError, {
      cause: 'duplicate resource names: inbound|8080||, inbound|8081||',
      since: Date.parse('2026-01-02T03:04:05.000Z'),
    });
    const table = formatTable(t.list());
    assert.match(table, /^NODE ID\s+IDENTITY\s+CDS\s+LDS\s+CONFIG$/m);
    assert.match(table, /NOT SENT\s+NOT SENT\s+NOT BUILT$/m);
    const full = formatProxy(t.get(p.nodeId)!, clock.now());
    assert.match(
      full,
      /config: {5}NOT BUILT since 03:04:05\.000: keeps its last accepted config\n {2}cause: duplicate resource names: inbound\|8080\|\|, inbound\|8081\|\|\n/,
    );
    t.onBuilt(p.nodeId);
    assert.equal(t.get(p.nodeId)!.configError, undefined);
    assert.doesNotMatch(formatProxy(t.get(p.nodeId)!, clock.now()), /NOT BUILT/);
  });
});
