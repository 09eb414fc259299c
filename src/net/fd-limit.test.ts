import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { defaultMaxConnections, parseFdLimit, raiseFdLimit } from './index.js';

const limits = (soft: string, hard: string) =>
  `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${soft}                 ${hard}                 files\n`;

describe('net: file-descriptor limit', () => {
  it('parses /proc/self/limits', () => {
    assert.deepEqual(parseFdLimit(limits('1024', '4096')), { soft: 1024, hard: 4096 });
    assert.deepEqual(parseFdLimit(limits('unlimited', 'unlimited')), { soft: Infinity, hard: Infinity });
    assert.equal(parseFdLimit('nothing here'), undefined);
  });

  it('raises a soft limit below the hard one with prlimit on its own pid, and says what it did', () => {
    let text = limits('1024', '4096');
    const calls: string[] = [];
    const r = raiseFdLimit({
      read: () => text,
      prlimit: (pid, soft, hard) => {
        calls.push(`${pid} ${soft}:${hard}`);
        text = limits(String(soft), String(hard));
        return undefined;
      },
    });
    assert.deepEqual(calls, [`${process.pid} 4096:4096`]);
    assert.deepEqual(r.after, { soft: 4096, hard: 4096 });
    assert.equal(raiseFdLimit({ read: () => limits('10', '20'), prlimit: () => 'not permitted' }).note, 'not raised: not permitted');
  });

  it('a process started with a low soft limit has the hard limit by the time it runs (Node raises it)', function () {
    const r = spawnSync(
      'prlimit',
      [
        '--nofile=256:2048',
        process.execPath,
        '--input-type=module',
        '-e',
        `
      const { raiseFdLimit } = await import(${JSON.stringify(new URL('./fd-limit.js', import.meta.url).href)});
      console.log(JSON.stringify(raiseFdLimit()));`,
      ],
      { encoding: 'utf8' },
    );
    if (r.error) throw new Error('prlimit(1) not found: install util-linux'); // a skipped test proves nothing
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { after: { soft: number; hard: number } };
    assert.deepEqual(report.after, { soft: 2048, hard: 2048 });
  });

  it('keeps the xDS cap below the limit, with a floor', () => {
    assert.equal(defaultMaxConnections({ soft: 1200, hard: 1200 }), 688);
    assert.equal(defaultMaxConnections({ soft: 100, hard: 100 }), 64);
    assert.equal(defaultMaxConnections(undefined), 512);
  });
});
