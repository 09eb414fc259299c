import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createLogger, defaultLogFormat } from './index.js';

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += String(d)));
  return { stream, text: () => text };
}

describe('observability: logger formats', () => {
  it('writes one JSON object per line by default when the stream is not a terminal', () => {
    assert.equal(defaultLogFormat({ isTTY: false }), 'json');
    assert.equal(defaultLogFormat({}), 'json');
    const c = capture();
    createLogger({ format: 'json', destination: c.stream }).error('config rejected', { file: 'mesh.yaml', line: 3 });
    const line = JSON.parse(c.text().trim()) as Record<string, unknown>;
    assert.equal(line.msg, 'config rejected');
    assert.equal(line.file, 'mesh.yaml');
    assert.equal(line.level, 50);
    assert.equal(typeof line.time, 'number');
  });

  it('writes a line a person reads on a terminal: local time, level, message, fields; no epoch, no JSON', () => {
    assert.equal(defaultLogFormat({ isTTY: true }), 'pretty');
    const c = capture();
    createLogger({ format: 'pretty', destination: c.stream }).error('config rejected', { file: 'mesh.yaml', line: 3 });
    const text = c.text();
    assert.match(text, /^\[\d\d:\d\d:\d\d\.\d{3}\] ERROR \(meshpilot\): config rejected\n/);
    assert.match(text, /file: "mesh\.yaml"/);
    assert.match(text, /line: 3/);
    assert.throws(() => JSON.parse(text.split('\n')[0]!));
    assert.doesNotMatch(text, /\b1\d{12}\b/, 'no epoch milliseconds');
  });

  it('meshpilot serve logs pretty on a terminal and JSON into a pipe (script(1) gives it a pseudo-terminal)', function () {
    this.timeout(60_000);
    assert.ok(existsSync('/usr/bin/script'), 'script(1) from util-linux (Debian bsdutils, essential)');
    const bin = fileURLToPath(new URL('../cli/bin.js', import.meta.url));
    const args = [bin, 'serve', '--config', '/nonexistent/mesh.yaml', '--ephemeral', '--xds-address', '127.0.0.1:0', '--admin-port', '0'];
    const piped = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 30_000 });
    assert.match(piped.stderr, /^\{"level":50,"time":\d+,.*"msg":"config rejected"\}$/m);
    const command = [process.execPath, ...args].map((a) => `'${a}'`).join(' ');
    const tty = spawnSync('/usr/bin/script', ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 30_000 });
    // eslint-disable-next-line no-control-regex
    const plain = tty.stdout.replace(/\x1b\[[0-9;]*m/g, '');
    assert.match(plain, /\[\d\d:\d\d:\d\d\.\d{3}\] ERROR \(meshpilot\): config rejected/);
    assert.doesNotMatch(plain, /"level":50/);
    const forced = spawnSync('/usr/bin/script', ['-qec', `${command} --log-format json`, '/dev/null'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.match(forced.stdout, /"level":50,.*"msg":"config rejected"/, '--log-format json wins over the terminal');
  });
});
