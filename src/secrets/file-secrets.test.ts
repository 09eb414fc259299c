import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SpiffeId } from '../identity/index.js';
import { silentLogger } from '../observability/index.js';
import { checkSecretDir, createFileSecrets, removeLeftoverSecretFiles, writeAccountFiles } from './file-secrets.js';
import { removeLeftoverTempFiles } from '../ca/index.js';
import type { WorkloadCertificate } from './svid-store.js';

const id = 'spiffe://cluster.local/ns/ns1/sa/sa1' as SpiffeId;
const cert = (serial: string): WorkloadCertificate => ({
  spiffeId: id,
  chainPem: `CHAIN ${serial}\n`,
  keyPem: `KEY ${serial}\n`,
  serialHex: serial,
  notBefore: 0,
  notAfter: Number.MAX_SAFE_INTEGER,
});

describe('file secrets', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'meshpilot-files-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the three PEMs and the SDS file, 0600 in a 0700 directory, through ..data', () => {
    const d = join(dir, 'ns1', 'sa1');
    assert.ok(writeAccountFiles(d, cert('01'), 'ROOT\n').ok);
    assert.equal(readFileSync(join(d, 'key.pem'), 'utf8'), 'KEY 01\n');
    assert.equal(readFileSync(join(d, 'cert-chain.pem'), 'utf8'), 'CHAIN 01\n');
    assert.equal(readFileSync(join(d, 'root-cert.pem'), 'utf8'), 'ROOT\n');
    assert.equal(statSync(d).mode & 0o777, 0o700);
    for (const f of ['key.pem', 'cert-chain.pem', 'root-cert.pem']) assert.equal(statSync(join(d, f)).mode & 0o777, 0o600);
    assert.ok(lstatSync(join(d, '..data')).isSymbolicLink());
    const sds = JSON.parse(readFileSync(join(d, 'default-sds.yaml'), 'utf8')) as { resources: { tls_certificate: unknown }[] };
    assert.deepEqual(sds.resources[0]!.tls_certificate, {
      certificate_chain: { filename: join(d, 'cert-chain.pem') },
      private_key: { filename: join(d, 'key.pem') },
      watched_directory: { path: d },
    });
    // A second version replaces the first whole, and the old version directory is removed.
    assert.ok(writeAccountFiles(d, cert('02'), 'ROOT2\n').ok);
    assert.equal(readFileSync(join(d, 'key.pem'), 'utf8'), 'KEY 02\n');
    assert.equal(readdirSync(d).filter((e) => e.startsWith('..') && e !== '..data').length, 1);
  });

  it('removes at start what a crash mid-write left (temp files, temp link, unpublished versions), never the published version', () => {
    const d = join(dir, 'ns1', 'sa1');
    assert.ok(writeAccountFiles(d, cert('01'), 'ROOT\n').ok);
    const published = readdirSync(d).filter((e) => e.startsWith('..') && e !== '..data');
    // A crash between writing a version and renaming ..data over to it, and between temp file and rename.
    mkdirSync(join(d, '..mq0abc-crash1'));
    writeFileSync(join(d, '..mq0abc-crash1', 'key.pem'), 'half');
    symlinkSync('..mq0abc-crash1', join(d, '..data_tmp-4242'));
    writeFileSync(join(d, 'default-sds.yaml.tmp-4242'), '{');
    symlinkSync(join('..data', 'key.pem'), join(d, 'key.pem.tmp-77'));
    const removed = removeLeftoverSecretFiles(dir)
      .map((p) => p.slice(d.length + 1))
      .sort();
    assert.deepEqual(removed, ['..data_tmp-4242', '..mq0abc-crash1', 'default-sds.yaml.tmp-4242', 'key.pem.tmp-77']);
    assert.deepEqual(
      readdirSync(d).filter((e) => e.startsWith('..') && e !== '..data'),
      published,
    );
    assert.equal(readFileSync(join(d, 'key.pem'), 'utf8'), 'KEY 01\n', 'the published version still reads');
    assert.deepEqual(removeLeftoverSecretFiles(dir), [], 'nothing more to remove');
    assert.deepEqual(removeLeftoverSecretFiles(join(dir, 'missing')), []);
  });

  it("removes only writeFileAtomic's temp names from a state directory", () => {
    for (const f of ['ca.json.tmp-12-0a1b2c3d', 'issued.jsonl.tmp-1-ffffffff', 'ca.json', 'x.tmp-12', 'a.tmp-12-xyz'])
      writeFileSync(join(dir, f), '');
    assert.deepEqual(removeLeftoverTempFiles(dir).sort(), ['ca.json.tmp-12-0a1b2c3d', 'issued.jsonl.tmp-1-ffffffff']);
    assert.deepEqual(readdirSync(dir).sort(), ['a.tmp-12-xyz', 'ca.json', 'x.tmp-12']);
    assert.equal(existsSync(join(dir, 'ca.json')), true);
  });

  it('leaves the last complete version in place when a write fails midway (the version directory is removed)', () => {
    const d = join(dir, 'ns1', 'sa1');
    assert.ok(writeAccountFiles(d, cert('01'), 'ROOT\n').ok);
    // A key that cannot be written as text stands for a write failing after the first file.
    const bad = { ...cert('02'), chainPem: undefined as unknown as string };
    assert.ok(!writeAccountFiles(d, bad, 'ROOT\n').ok);
    assert.equal(readFileSync(join(d, 'key.pem'), 'utf8'), 'KEY 01\n');
    assert.equal(readFileSync(join(d, 'cert-chain.pem'), 'utf8'), 'CHAIN 01\n');
    assert.equal(readdirSync(d).filter((e) => e.startsWith('..') && e !== '..data').length, 1);
  });

  it("gives the files the owner it is told (the secret directory's), so Envoy as uid 1337 reads them", function () {
    if (process.getuid?.() !== 0) this.skip(); // chown needs root
    const d = join(dir, 'ns1', 'sa1');
    assert.ok(writeAccountFiles(d, cert('01'), 'ROOT\n', { uid: 1337, gid: 1337 }).ok);
    for (const p of [join(dir, 'ns1'), d, join(d, 'key.pem'), join(d, 'cert-chain.pem'), join(d, 'default-sds.yaml')])
      assert.equal(statSync(p).uid, 1337, p);
  });

  it('refuses a secret directory that cannot be written, naming it', () => {
    const file = join(dir, 'file');
    writeFileSync(file, '');
    const r = checkSecretDir(file);
    assert.ok(!r.ok && r.error.includes(file));
    assert.ok(checkSecretDir(join(dir, 'new', 'dir')).ok);
  });

  it('wants one SVID per account, writes on each change and on a trust change, releases on close', async () => {
    const held: { cert?: WorkloadCertificate } = {};
    let onChanged: (k: string) => void = () => {};
    let onTrust: () => void = () => {};
    let root = 'ROOT1\n';
    const wants: string[] = [];
    const releases: string[] = [];
    const files = createFileSecrets({
      dir,
      svids: {
        want: (k) => wants.push(k),
        release: (k) => releases.push(k),
        current: () => held.cert,
        onChanged: (cb) => ((onChanged = cb), () => {}),
      },
      trustBundlePem: () => root,
      onTrustChange: (cb) => ((onTrust = cb), () => {}),
      log: silentLogger,
    });
    files.setAccounts([{ namespace: 'ns1', serviceAccount: 'sa1', spiffeId: id }]);
    assert.deepEqual(wants, ['files:ns1/sa1']);
    const done = files.written();
    held.cert = cert('0a');
    onChanged('files:ns1/sa1');
    await done;
    const d = join(dir, 'ns1', 'sa1');
    assert.equal(readFileSync(join(d, 'cert-chain.pem'), 'utf8'), 'CHAIN 0a\n');
    root = 'ROOT1\nROOT2\n';
    onTrust();
    assert.equal(readFileSync(join(d, 'root-cert.pem'), 'utf8'), root);
    onChanged('other/workload'); // not ours: nothing happens
    files.setAccounts([]);
    assert.deepEqual(releases, ['files:ns1/sa1']);
    files.close();
  });
});
