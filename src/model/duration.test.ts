import assert from 'node:assert/strict';
import { formatDuration, parseDuration } from './index.js';

describe('parseDuration', () => {
  const good: [string, number][] = [
    ['24h', 86_400_000],
    ['90s', 90_000],
    ['500ms', 500],
    ['1h30m', 5_400_000],
    ['1.5s', 1500],
    ['0', 0],
    ['-2m', -120_000],
    ['1h0m30s', 3_630_000],
    ['2000us', 2],
  ];
  for (const [text, ms] of good) {
    it(`parses ${text}`, () => assert.deepEqual(parseDuration(text), { ok: true, value: ms }));
  }
  for (const text of ['', '10', 'h', '1x', '1h 30m', '7d', '1.5.5s']) {
    it(`rejects '${text}'`, () => assert.equal(parseDuration(text).ok, false));
  }
  it('hints at hours for days', () => {
    const r = parseDuration('7d');
    assert.ok(!r.ok && r.error.includes('168h'));
  });
});

describe('formatDuration', () => {
  it('round-trips whole milliseconds', () => {
    for (const ms of [1, 500, 90_000, 5_400_000, 86_400_000, 3_661_001]) {
      assert.deepEqual(parseDuration(formatDuration(ms)), { ok: true, value: ms });
    }
    assert.equal(formatDuration(5_400_000), '1h30m');
    assert.equal(formatDuration(0), '0s');
  });
});
