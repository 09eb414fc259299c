import assert from 'node:assert/strict';
import { runCli } from './testing.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../observability/index.js';
import { registerCaCommands } from './ca-commands.js';
import { parseSpiffeBundle } from '../federation/index.js';

const run = (...args: string[]) => runCli((program, io) => registerCaCommands(program, { log: silentLogger, write: io.write }), ...args);

const openssl = (args: string[]) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('cli: meshpilot ca', () => {
  let dir: string;
  let state: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-cli-'));
    state = join(dir, 'state');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the SPIFFE bundle of the state directory for a federated mesh, during a rotation with both roots', async () => {
    assert.equal((await run('ca', 'init', '--state-dir', state, '--trust-domain', 'b.example')).exitCode, 0);
    const r = await run('ca', 'bundle', '--state-dir', state, '--refresh-hint', '2m');
    assert.equal(r.exitCode, 0, r.err);
    const b = parseSpiffeBundle(r.out);
    assert.ok(b.ok, JSON.stringify(b));
    assert.equal(b.value.rootsPem.length, 1);
    assert.equal(b.value.refreshHintSeconds, 120);
    assert.ok(readFileSync(join(state, 'root-1-cert.pem'), 'utf8').includes(b.value.rootsPem[0]!.split('\n')[1]!));
    assert.equal((await run('ca', 'rotate-root', '--state-dir', state, '--phase', 'prepare')).exitCode, 0);
    const both = parseSpiffeBundle((await run('ca', 'bundle', '--state-dir', state)).out);
    assert.ok(both.ok);
    assert.equal(both.value.rootsPem.length, 2);
    const bad = await run('ca', 'bundle', '--state-dir', state, '--refresh-hint', '10ms');
    assert.equal(bad.exitCode, 1);
    assert.match(bad.err, /--refresh-hint: must be at least 1s/);
  });

  it('takes --ttl as a Go duration and names what is wrong with one it cannot read', async () => {
    assert.equal((await run('ca', 'init', '--state-dir', state)).exitCode, 0);
    const ok = await run(
      'ca',
      'issue',
      '--state-dir',
      state,
      '--namespace',
      'a',
      '--service-account',
      'b',
      '--out',
      join(dir, 'o'),
      '--ttl',
      '1h30m',
    );
    assert.equal(ok.exitCode, 0, ok.err);
    const bad = await run(
      'ca',
      'issue',
      '--state-dir',
      state,
      '--namespace',
      'a',
      '--service-account',
      'b',
      '--out',
      join(dir, 'o'),
      '--ttl',
      '7d',
    );
    assert.notEqual(bad.exitCode, 0);
    assert.match(bad.err, /--ttl: .*168h/);
  });

  it('refuses to issue the control plane identity, by names or by SPIFFE ID, in the default or a given root namespace', async () => {
    assert.equal((await run('ca', 'init', '--state-dir', state)).exitCode, 0);
    const out = join(dir, 'o');
    const attempts = [
      ['--namespace', 'istio-system', '--service-account', 'meshpilot'],
      ['--spiffe-id', 'spiffe://cluster.local/ns/istio-system/sa/meshpilot'],
      ['--namespace', 'mesh-root', '--service-account', 'meshpilot', '--root-namespace', 'mesh-root'],
    ];
    for (const a of attempts) {
      const r = await run('ca', 'issue', '--state-dir', state, '--out', out, ...a);
      assert.notEqual(r.exitCode, 0, a.join(' '));
      assert.match(r.err, /reserved for the control plane/);
    }
    assert.throws(() => statSync(join(out, 'key.pem')), 'nothing written');
    const other = await run('ca', 'issue', '--state-dir', state, '--out', out, '--namespace', 'default', '--service-account', 'meshpilot');
    assert.equal(other.exitCode, 0, other.err);
  });

  it('refuses to change a state directory another live process has locked, naming its pid; show still reads it', async () => {
    assert.equal((await run('ca', 'init', '--state-dir', state)).exitCode, 0);
    // The parent process (the test runner's launcher) is alive and is not this process: it stands for a running server.
    writeFileSync(join(state, 'meshpilot.lock'), `${process.ppid}\n`);
    const writers = [
      ['ca', 'issue', '--state-dir', state, '--out', join(dir, 'o'), '--namespace', 'a', '--service-account', 'b'],
      ['ca', 'revoke', '--state-dir', state, '--serial', '01'],
      ['ca', 'rotate-root', '--state-dir', state, '--phase', 'prepare'],
      ['ca', 'init', '--state-dir', state],
    ];
    for (const w of writers) {
      const r = await run(...w);
      assert.notEqual(r.exitCode, 0, w.join(' '));
      assert.match(r.err, new RegExp(`in use by pid ${process.ppid}\\b`), w.join(' '));
    }
    assert.equal((await run('ca', 'show', '--state-dir', state)).exitCode, 0);
    rmSync(join(state, 'meshpilot.lock'));
    const after = await run('ca', 'issue', '--state-dir', state, '--out', join(dir, 'o'), '--namespace', 'a', '--service-account', 'b');
    assert.equal(after.exitCode, 0, after.err);
    assert.throws(() => statSync(join(state, 'meshpilot.lock')), 'the command released its lock');
  });

  it('init on an existing CA reuses it, says so and what it holds, and never replaces the root', async () => {
    const first = await run('ca', 'init', '--state-dir', state);
    assert.equal(first.exitCode, 0, first.err);
    assert.match(first.out, /^initialized self-signed CA/);
    const rootBefore = readFileSync(join(state, 'root-1-cert.pem'), 'utf8');
    const fingerprint = /sha256 ([0-9A-F:]+)/.exec(first.out)?.[1];
    assert.ok(fingerprint, first.out);
    const again = await run('ca', 'init', '--state-dir', state);
    assert.equal(again.exitCode, 0, again.err);
    assert.match(again.out, /^reused the existing self-signed CA in .*\(nothing changed; its root was kept\)/);
    assert.ok(again.out.includes(fingerprint), 'the same root is named');
    assert.match(again.out, /outstanding SVIDs: 0\nrevoked serials: 0\n/);
    assert.equal(readFileSync(join(state, 'root-1-cert.pem'), 'utf8'), rootBefore);
    const otherDomain = await run('ca', 'init', '--state-dir', state, '--trust-domain', 'example.org');
    assert.equal(otherDomain.exitCode, 1);
    assert.match(otherDomain.err, /trust domain cluster\.local, not example\.org/);
  });

  it('init, issue, show, revoke: files verify with openssl and the CRL lists the serial', async () => {
    const init = await run('ca', 'init', '--state-dir', state, '--trust-domain', 'example.org');
    assert.equal(init.exitCode, 0, init.err);
    assert.match(init.out, /initialized self-signed CA/);
    const out = join(dir, 'out');
    const issue = await run(
      'ca',
      'issue',
      '--state-dir',
      state,
      '--namespace',
      'photo-ns',
      '--service-account',
      'photo-frontend',
      '--out',
      out,
      '--ttl',
      '1h',
    );
    assert.equal(issue.exitCode, 0, issue.err);
    assert.match(issue.out, /issued spiffe:\/\/example\.org\/ns\/photo-ns\/sa\/photo-frontend/);
    assert.equal(statSync(join(out, 'key.pem')).mode & 0o777, 0o600);
    const v = openssl(['verify', '-x509_strict', '-CAfile', join(out, 'root-cert.pem'), join(out, 'cert-chain.pem')]);
    assert.match(v, /OK/);
    const text = openssl(['x509', '-in', join(out, 'cert-chain.pem'), '-noout', '-text']);
    assert.match(text, /URI:spiffe:\/\/example\.org\/ns\/photo-ns\/sa\/photo-frontend/);
    const serial = /serial: ([0-9a-f]+)/.exec(issue.out)![1]!;

    const rev = await run('ca', 'revoke', '--state-dir', state, '--serial', serial.toUpperCase());
    assert.equal(rev.exitCode, 0, rev.err);
    const show = await run('ca', 'show', '--state-dir', state, '--crl');
    assert.equal(show.exitCode, 0, show.err);
    assert.match(show.out, /trust domain: example\.org/);
    assert.ok(show.out.includes(serial));
    assert.match(show.out, /BEGIN CERTIFICATE/);
    const crlPem = /-----BEGIN X509 CRL-----[\s\S]*?-----END X509 CRL-----\n/.exec(show.out)![0];
    writeFileSync(join(dir, 'crl.pem'), crlPem);
    const crlText = openssl(['crl', '-verify', '-in', join(dir, 'crl.pem'), '-CAfile', join(out, 'root-cert.pem'), '-noout', '-text']);
    assert.ok(crlText.toLowerCase().includes(serial));
  });

  it('issues with --spiffe-id and an RSA key', async () => {
    assert.equal((await run('ca', 'init', '--state-dir', state)).exitCode, 0);
    const out = join(dir, 'rsa');
    const r = await run(
      'ca',
      'issue',
      '--state-dir',
      state,
      '--spiffe-id',
      'spiffe://cluster.local/ns/a/sa/b',
      '--key',
      'rsa-2048',
      '--out',
      out,
    );
    assert.equal(r.exitCode, 0, r.err);
    assert.match(readFileSync(join(out, 'key.pem'), 'utf8'), /BEGIN PRIVATE KEY/);
    assert.match(openssl(['x509', '-in', join(out, 'cert-chain.pem'), '-noout', '-text']), /rsaEncryption/);
  });

  it('rotates the root through its phases and refuses to retire early', async () => {
    assert.equal((await run('ca', 'init', '--state-dir', state)).exitCode, 0);
    assert.equal(
      (await run('ca', 'issue', '--state-dir', state, '--namespace', 'a', '--service-account', 'b', '--out', join(dir, 'o'))).exitCode,
      0,
    );
    const p = await run('ca', 'rotate-root', '--state-dir', state, '--phase', 'prepare');
    assert.equal(p.exitCode, 0, p.err);
    assert.match(p.out, /roots in bundle: 2/);
    assert.equal((await run('ca', 'rotate-root', '--state-dir', state, '--phase', 'activate')).exitCode, 0);
    const early = await run('ca', 'rotate-root', '--state-dir', state, '--phase', 'retire');
    assert.equal(early.exitCode, 1);
    assert.match(early.err, /still outstanding/);
    const forced = await run('ca', 'rotate-root', '--state-dir', state, '--phase', 'retire', '--force');
    assert.equal(forced.exitCode, 0, forced.err);
    assert.match(forced.out, /roots in bundle: 1/);
  });

  it('initializes a plug-in CA whose SVID chains carry the intermediate', async () => {
    const plug = join(dir, 'plug');
    execFileSync('mkdir', ['-p', plug]);
    const p = (f: string) => join(plug, f);
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', p('root-key.pem')]);
    openssl([
      'req',
      '-x509',
      '-new',
      '-key',
      p('root-key.pem'),
      '-subj',
      '/O=test/CN=root',
      '-days',
      '30',
      '-out',
      p('root-cert.pem'),
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', p('ca-key.pem')]);
    openssl(['req', '-new', '-key', p('ca-key.pem'), '-subj', '/O=test/CN=intermediate', '-out', p('ca.csr')]);
    writeFileSync(
      p('ext.cnf'),
      'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
    );
    openssl([
      'x509',
      '-req',
      '-in',
      p('ca.csr'),
      '-CA',
      p('root-cert.pem'),
      '-CAkey',
      p('root-key.pem'),
      '-CAcreateserial',
      '-days',
      '20',
      '-extfile',
      p('ext.cnf'),
      '-out',
      p('ca-cert.pem'),
    ]);
    writeFileSync(p('cert-chain.pem'), readFileSync(p('ca-cert.pem'), 'utf8') + readFileSync(p('root-cert.pem'), 'utf8'));
    const init = await run('ca', 'init', '--state-dir', state, '--plugin-dir', plug);
    assert.equal(init.exitCode, 0, init.err);
    assert.match(init.out, /plug-in CA/);
    const out = join(dir, 'o');
    assert.equal((await run('ca', 'issue', '--state-dir', state, '--namespace', 'a', '--service-account', 'b', '--out', out)).exitCode, 0);
    const chain = readFileSync(join(out, 'cert-chain.pem'), 'utf8');
    assert.equal(chain.match(/BEGIN CERTIFICATE/g)?.length, 2);
    writeFileSync(join(dir, 'untrusted.pem'), chain.slice(chain.indexOf('-----BEGIN', 10)));
    writeFileSync(join(dir, 'leaf.pem'), chain.slice(0, chain.indexOf('-----BEGIN', 10)));
    const v = openssl([
      'verify',
      '-x509_strict',
      '-CAfile',
      join(out, 'root-cert.pem'),
      '-untrusted',
      join(dir, 'untrusted.pem'),
      join(dir, 'leaf.pem'),
    ]);
    assert.match(v, /OK/);
    const rot = await run('ca', 'rotate-root', '--state-dir', state, '--phase', 'prepare');
    assert.equal(rot.exitCode, 1);
    assert.match(rot.err, /plug-in files/);
  });

  it('reports errors on stderr with a non-zero exit', async () => {
    const none = await run('ca', 'show', '--state-dir', join(dir, 'nothing'));
    assert.equal(none.exitCode, 1);
    assert.match(none.err, /meshpilot ca init/);
    assert.equal((await run('ca', 'init', '--state-dir', state)).exitCode, 0);
    const ttl = await run(
      'ca',
      'issue',
      '--state-dir',
      state,
      '--namespace',
      'a',
      '--service-account',
      'b',
      '--out',
      join(dir, 'x'),
      '--ttl',
      '24000h',
    );
    assert.equal(ttl.exitCode, 1);
    assert.match(ttl.err, /exceeds the maximum/);
    const td = await run('ca', 'issue', '--state-dir', state, '--spiffe-id', 'spiffe://example.org/ns/a/sa/b', '--out', join(dir, 'x'));
    assert.match(td.err, /not in trust domain cluster\.local/);
    const ns = await run('ca', 'issue', '--state-dir', state, '--namespace', 'A_B', '--service-account', 'b', '--out', join(dir, 'x'));
    assert.match(ns.err, /namespace must be a DNS-1123 label/);
    const serial = await run('ca', 'revoke', '--state-dir', state, '--serial', 'abcdef');
    assert.equal(serial.exitCode, 1);
    assert.match(serial.err, /no unexpired certificate with serial abcdef/);
    const badTtl = await run(
      'ca',
      'issue',
      '--state-dir',
      state,
      '--namespace',
      'a',
      '--service-account',
      'b',
      '--out',
      join(dir, 'x'),
      '--ttl',
      'soon',
    );
    assert.match(badTtl.err, /invalid duration 'soon'/);
    const phase = await run('ca', 'rotate-root', '--state-dir', state, '--phase', 'later');
    assert.notEqual(phase.exitCode, 0);
    writeFileSync(join(state, 'root-1-key.pem'), 'junk');
    const corrupt = await run('ca', 'show', '--state-dir', state);
    assert.match(corrupt.err, /root-1-key\.pem: not a valid PEM private key/);
  });
});
