import assert from 'node:assert/strict';
import { parseConnectionFlags } from './connection-flags.js';

describe('cli: serve connection flags', () => {
  it('turns the flags into per-listener limits, leaving out what was not given', () => {
    const r = parseConnectionFlags({
      maxConnections: '2000',
      maxConnectionsPerSource: '50',
      adminMaxConnections: '8',
      firstRequestTimeout: '3s',
    });
    assert.deepEqual(r.ok && r.value, {
      xds: { maxConnections: 2000, maxPerSource: 50, firstRequestTimeoutMs: 3000 },
      admin: { maxConnections: 8, maxPerSource: 8, firstRequestTimeoutMs: 3000 },
    });
    assert.deepEqual(parseConnectionFlags({}), { ok: true, value: { xds: {}, admin: {} } });
  });
  it('names each bad flag', () => {
    const r = parseConnectionFlags({ maxConnections: '0', maxConnectionsPerSource: 'many', firstRequestTimeout: '5ms' });
    assert.ok(!r.ok);
    assert.match(r.error.join('\n'), /--max-connections: .*at least 1/);
    assert.match(r.error.join('\n'), /--max-connections-per-source: .*"many"/);
    assert.match(r.error.join('\n'), /--first-request-timeout: at least 100ms/);
  });
});
