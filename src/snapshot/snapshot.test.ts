import assert from 'node:assert/strict';
import { unwrap } from '../lib/index.js';
import { createRecordingLogger } from '../observability/index.js';
import { TypeUrl } from '../proto/index.js';
import { createSnapshot, createSnapshotCache, encodedResource, encodingCount } from './index.js';
import { testCluster, testEndpoints } from './test-resources.js';
import { Cluster } from '../proto/index.js';

describe('snapshots', () => {
  it('derive versions from content: equal content, equal version; a change changes only its type', () => {
    const a = unwrap(createSnapshot([testCluster('a'), testEndpoints('a')]));
    const b = unwrap(createSnapshot([testEndpoints('a'), testCluster('a')]));
    assert.equal(a.version, b.version);
    const c = unwrap(createSnapshot([testCluster('a', 1), testEndpoints('a')]));
    assert.notEqual(c.typeVersion(TypeUrl.Cluster), a.typeVersion(TypeUrl.Cluster));
    assert.equal(c.typeVersion(TypeUrl.ClusterLoadAssignment), a.typeVersion(TypeUrl.ClusterLoadAssignment));
  });

  it('encode each resource once, however many times its bytes are used', () => {
    const r = testCluster('once');
    const before = encodingCount();
    r.version();
    r.sotwChunk();
    r.deltaChunk();
    r.anyBytes();
    assert.equal(encodingCount() - before, 1);
  });

  it('are refused by the cache when a reference dangles, and the last good one stays', () => {
    const log = createRecordingLogger();
    const cache = createSnapshotCache({ log });
    const good = unwrap(createSnapshot([testCluster('a')]));
    unwrap(cache.set('n', good));
    const eds = encodedResource(TypeUrl.Cluster, 'eds', Cluster, Cluster.fromPartial({ name: 'eds' }), [
      { typeUrl: TypeUrl.ClusterLoadAssignment, name: 'eds' },
    ]);
    const bad = unwrap(createSnapshot([eds]));
    const r = cache.set('n', bad);
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.error, /dangling references: eds -> eds/);
    assert.equal(cache.get('n')?.version, good.version);
    assert.ok(log.lines.some((l) => l.msg === 'snapshot rejected'));
  });

  it('are delivered to watchers once per new version', () => {
    const cache = createSnapshotCache({ log: createRecordingLogger() });
    const seen: string[] = [];
    const off = unwrap(cache.watch({ nodeId: 'n' }, (s) => seen.push(s.version)));
    const s1 = unwrap(createSnapshot([testCluster('a')]));
    unwrap(cache.set('n', s1));
    unwrap(cache.set('n', unwrap(createSnapshot([testCluster('a')]))));
    unwrap(cache.set('n', unwrap(createSnapshot([testCluster('a', 2)]))));
    off();
    unwrap(cache.set('n', unwrap(createSnapshot([testCluster('a', 3)]))));
    assert.equal(seen.length, 2);
    assert.equal(seen[0], s1.version);
  });
});
