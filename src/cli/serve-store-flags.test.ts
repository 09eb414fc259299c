import assert from 'node:assert/strict';
import { registerServeCommand } from './serve-command.js';
import { runCli } from './testing.js';

const serve = (...args: string[]) => runCli((p) => registerServeCommand(p), 'serve', '--ephemeral', ...args);

describe('cli: meshpilot serve, config store and stream limit flags', () => {
  it('needs --config with files, refuses it with etcd, and names a store it does not know', async () => {
    await assert.rejects(serve(), /--config: required with --config-store files/);
    await assert.rejects(
      serve('--config-store', 'etcd', '--config', 'x.yaml', '--etcd-endpoints', 'http://127.0.0.1:1'),
      /--config: not with --config-store etcd; write the config with `meshpilot apply -f` instead/,
    );
    await assert.rejects(serve('--config-store', 'consul'), /--config-store: expected files or etcd, got "consul"/);
  });

  it('refuses etcd-only flags with files, and etcd without endpoints', async () => {
    await assert.rejects(serve('--config', 'x.yaml', '--allow-stale-start'), /--allow-stale-start: only with --config-store etcd/);
    await assert.rejects(serve('--config-store', 'etcd'), /--etcd-endpoints: required/);
    await assert.rejects(
      serve('--config-store', 'etcd', '--etcd-endpoints', 'http://127.0.0.1:1', '--allow-stale-start'),
      /--allow-stale-start: needs --config-cache FILE or --state-dir/,
    );
  });

  it('refuses a --max-streams that is not a positive whole number', async () => {
    await assert.rejects(serve('--config', 'x.yaml', '--max-streams', '0'), /--max-streams: expected a positive whole number, got 0/);
    await assert.rejects(serve('--config', 'x.yaml', '--max-streams', 'many'), /--max-streams: expected a positive whole number/);
  });
});
