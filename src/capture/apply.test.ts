import assert from 'node:assert/strict';
import { unwrap } from '../lib/index.js';
import { applyCapture, cleanCapture, type CaptureHost, type RunResult } from './apply.js';
import { parseCaptureSettings } from './settings.js';

const settings = unwrap(
  parseCaptureSettings({
    proxyUid: '1337',
    outboundPort: '15001',
    inboundPort: '15006',
    excludeInboundPorts: '',
    excludeOutboundPorts: '',
  }),
);
const EMPTY_NAT = '*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n';

/** A fake host whose nat table is a save text; restore scripts are recorded and applied crudely. */
function fakeHost(
  o: {
    missing?: string[];
    privileged?: boolean;
    namespaces?: string[];
    users?: number[];
    failRestore?: (script: string) => boolean;
    dropChainOnApply?: boolean;
  } = {},
) {
  let table = EMPTY_NAT;
  const calls: string[][] = [];
  const scripts: string[] = [];
  const ok = (stdout = ''): RunResult => ({ status: 0, stdout, stderr: '' });
  const host: CaptureHost = {
    privilegeProblem: () => (o.privileged === false ? 'capture needs privilege' : undefined),
    missingCommands: (names) => names.filter((n) => (o.missing ?? []).includes(n)),
    namespaceExists: (n) => (o.namespaces ?? ['ns1']).includes(n),
    userExists: (uid) => (o.users ?? [1337]).includes(uid),
    run(argv, input) {
      calls.push([...argv]);
      const cmd = argv.find((a) => a.startsWith('iptables'));
      if (cmd === 'iptables-save') return ok(table);
      if (o.failRestore?.(input ?? '') === true) return { status: 1, stdout: '', stderr: 'iptables-restore: line 3 failed' };
      scripts.push(input ?? '');
      const lines = (input ?? '').split('\n');
      if (lines.some((l) => l.startsWith('-X '))) table = EMPTY_NAT;
      else {
        const decls = lines.filter((l) => l.startsWith(':') && !(o.dropChainOnApply === true && l.startsWith(':ISTIO_REDIRECT ')));
        table = EMPTY_NAT.replace('COMMIT', [...decls, ...lines.filter((l) => l.startsWith('-A '))].join('\n') + '\nCOMMIT');
      }
      return ok();
    },
  };
  return { host, calls, scripts, table: () => table };
}

describe('applyCapture and cleanCapture', () => {
  it('applies in the named namespace through ip netns exec, then cleans back to the empty table', () => {
    const f = fakeHost();
    const r = applyCapture(f.host, { netns: 'ns1' }, settings);
    assert.ok(r.ok);
    assert.deepEqual(f.calls[1], ['ip', 'netns', 'exec', 'ns1', 'iptables-restore', '--noflush']);
    assert.match(f.table(), /-A OUTPUT -p tcp -j ISTIO_OUTPUT/);
    const c = cleanCapture(f.host, { netns: 'ns1' });
    assert.ok(c.ok && c.value.chains.length === 4 && c.value.jumps.length === 2);
    assert.equal(f.table(), EMPTY_NAT);
  });

  it('runs iptables directly when no namespace is given', () => {
    const f = fakeHost();
    assert.ok(applyCapture(f.host, {}, settings).ok);
    assert.deepEqual(f.calls[0], ['iptables-save', '-t', 'nat']);
  });

  it('refuses without privilege, for a missing or malformed namespace, and for a missing proxy user, touching nothing', () => {
    const cases: Array<[Parameters<typeof fakeHost>[0], string | undefined, string]> = [
      [{ privileged: false }, 'ns1', 'no-privilege'],
      [{}, 'ns2', 'no-namespace'],
      [{}, '../etc', 'bad-namespace'],
      [{ users: [] }, 'ns1', 'no-proxy-user'],
      [{ missing: ['iptables-restore'] }, 'ns1', 'no-tools'],
    ];
    for (const [opts, netns, kind] of cases) {
      const f = fakeHost(opts);
      const r = applyCapture(f.host, { netns }, settings);
      assert.equal(r.ok ? 'applied' : r.error.kind, kind);
      assert.deepEqual(f.scripts, [], `${kind}: nothing written`);
    }
  });

  it('refuses to apply twice', () => {
    const f = fakeHost();
    assert.ok(applyCapture(f.host, { netns: 'ns1' }, settings).ok);
    const again = applyCapture(f.host, { netns: 'ns1' }, settings);
    assert.equal(again.ok ? 'applied' : again.error.kind, 'already-captured');
  });

  it('reports a failed restore and leaves the table as it was', () => {
    const f = fakeHost({ failRestore: (s) => s.includes(':ISTIO_INBOUND') });
    const r = applyCapture(f.host, { netns: 'ns1' }, settings);
    assert.ok(!r.ok);
    assert.equal(r.error.kind, 'iptables-failed');
    assert.match(r.error.message, /line 3 failed.*rolled back/);
    assert.equal(f.table(), EMPTY_NAT);
  });

  it('rolls back a capture that is not all there after the restore', () => {
    const f = fakeHost({ dropChainOnApply: true });
    const r = applyCapture(f.host, { netns: 'ns1' }, settings);
    assert.ok(!r.ok);
    assert.match(r.error.message, /not all present afterwards.*rolled back/);
    assert.equal(f.table(), EMPTY_NAT);
    assert.match(f.scripts[1], /^-X ISTIO_OUTPUT$/m);
  });
});
