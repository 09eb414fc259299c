import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createManualClock } from '../lib/index.js';
import { mustSpiffeId, mustTrustDomain } from '../identity/index.js';
import { createSelfSignedCa, generateKeyPair, openCa } from './index.js';
import type { CaError, CaErrorKind, CertificateAuthority } from './index.js';
import type { Result } from '../lib/index.js';
import { removeTempDir, tempDir } from './testing.js';

const ID = mustSpiffeId('spiffe://cluster.local/ns/a/sa/b');

function must(r: Result<CertificateAuthority, CaError>): CertificateAuthority {
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return r.value;
}

function fails(r: Result<CertificateAuthority, CaError>, kind: CaErrorKind, file: string, problem: RegExp): void {
  assert.equal(r.ok, false, 'expected the CA to refuse to load');
  if (r.ok) return;
  assert.equal(r.error.kind, kind, r.error.message);
  assert.ok(r.error.file?.endsWith(file), `error names ${file}: ${r.error.file}`);
  assert.ok(r.error.message.includes(file), `message names ${file}: ${r.error.message}`);
  assert.match(r.error.message, problem);
}

describe('ca: self-signed state directory', () => {
  let dir: string;
  let state: string;
  const clock = createManualClock(Date.UTC(2026, 0, 1));
  const open = () => createSelfSignedCa({ stateDir: state, clock });
  beforeEach(() => {
    dir = tempDir();
    state = join(dir, 'state');
  });
  afterEach(() => removeTempDir(dir));

  it('creates the root on first start with 0700 dir and 0600 files, and keeps it across restarts', async () => {
    const a = must(open());
    const root = a.trustBundle().pem;
    a.close();
    assert.equal(statSync(state).mode & 0o777, 0o700);
    for (const f of readdirSync(state)) assert.equal(statSync(join(state, f)).mode & 0o777, 0o600, f);
    assert.deepEqual(readdirSync(state).sort(), ['ca.json', 'root-1-cert.pem', 'root-1-key.pem']);
    const b = must(open());
    assert.equal(b.trustBundle().pem, root);
    b.close();
    const c = must(openCa({ stateDir: state, clock }));
    assert.equal(c.trustBundle().pem, root);
    assert.equal(c.trustDomain, 'cluster.local');
    c.close();
  });

  it('keeps issuance records and revocations across restarts', async () => {
    const a = must(open());
    const one = a.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
    const two = a.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
    assert.ok(one.ok && two.ok);
    assert.ok((await a.revoke(one.value.serialHex)).ok);
    a.close();
    assert.equal(statSync(join(state, 'issued.jsonl')).mode & 0o777, 0o600);
    const b = must(open());
    assert.deepEqual(b.crl()[0]!.revokedSerials, [one.value.serialHex], 'the CRL survives a restart');
    assert.ok((await b.revoke(two.value.serialHex)).ok, 'a certificate issued before the restart can be revoked after it');
    assert.deepEqual([...b.crl()[0]!.revokedSerials].sort(), [one.value.serialHex, two.value.serialHex].sort());
    b.close();
  });

  it('ignores a torn last journal line (crash mid-append) but refuses a corrupt one in the middle', async () => {
    const a = must(open());
    const one = a.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
    assert.ok(one.ok);
    a.close();
    appendFileSync(join(state, 'issued.jsonl'), '{"serial":"ab');
    const b = must(open());
    const two = b.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
    assert.ok(two.ok);
    b.close();
    const b2 = must(open());
    assert.ok((await b2.revoke(one.value.serialHex)).ok);
    assert.ok((await b2.revoke(two.value.serialHex)).ok, 'a record appended after a torn line is intact');
    b2.close();
    writeFileSync(join(state, 'issued.jsonl'), 'garbage\n' + readFileSync(join(state, 'issued.jsonl'), 'utf8'));
    fails(open(), 'bad-state', 'issued.jsonl', /line 1 is not a valid issuance record/);
  });

  it('refuses a corrupt ca.json, naming the file', async () => {
    must(open()).close();
    writeFileSync(join(state, 'ca.json'), '{ not json');
    fails(open(), 'bad-state', 'ca.json', /not valid JSON/);
    writeFileSync(
      join(state, 'ca.json'),
      JSON.stringify({
        format: 1,
        trustDomain: 'cluster.local',
        mode: 'self-signed',
        issuers: ['root-1'],
        signing: 'root-9',
        crlNumber: 0,
        revoked: [],
      }),
    );
    fails(open(), 'bad-state', 'ca.json', /signing must be one of issuers/);
  });

  it('refuses a corrupt key or certificate, naming the file', async () => {
    must(open()).close();
    const key = readFileSync(join(state, 'root-1-key.pem'), 'utf8');
    writeFileSync(join(state, 'root-1-key.pem'), key.slice(0, 60) + 'AAAA' + key.slice(64));
    fails(open(), 'bad-material', 'root-1-key.pem', /not a valid PEM private key/);
    writeFileSync(join(state, 'root-1-key.pem'), key);
    writeFileSync(join(state, 'root-1-cert.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    fails(open(), 'bad-material', 'root-1-cert.pem', /not a valid X\.509 certificate/);
  });

  it('refuses a key that does not match the certificate, naming the key file', async () => {
    must(open()).close();
    writeFileSync(join(state, 'root-1-key.pem'), generateKeyPair().privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    fails(open(), 'bad-material', 'root-1-key.pem', /does not match the certificate/);
  });

  it('refuses a missing root file and an expired root, naming the file', async () => {
    must(open()).close();
    const late = createManualClock(Date.UTC(2040, 0, 1));
    fails(createSelfSignedCa({ stateDir: state, clock: late }), 'bad-material', 'root-1-cert.pem', /expired/);
    writeFileSync(join(state, 'root-1-cert.pem'), '');
    fails(open(), 'bad-material', 'root-1-cert.pem', /no PEM certificate/);
    rmSync(join(state, 'root-1-cert.pem'));
    fails(open(), 'bad-state', 'root-1-cert.pem', /missing/);
  });

  it('refuses to open with another trust domain, and openCa refuses an empty directory', async () => {
    must(open()).close();
    fails(
      createSelfSignedCa({ stateDir: state, clock, trustDomain: mustTrustDomain('example.org') }),
      'bad-state',
      'ca.json',
      /trust domain cluster\.local, not example\.org/,
    );
    fails(openCa({ stateDir: join(dir, 'empty') }), 'not-ready', 'ca.json', /meshpilot ca init/);
  });

  it('does not change the state when a load fails', async () => {
    must(open()).close();
    const before = readdirSync(state).map((f) => [f, readFileSync(join(state, f), 'utf8')]);
    writeFileSync(join(state, 'root-1-key.pem'), 'junk');
    const junkBefore = readdirSync(state).map((f) => [f, readFileSync(join(state, f), 'utf8')]);
    assert.equal(open().ok, false);
    assert.deepEqual(
      readdirSync(state).map((f) => [f, readFileSync(join(state, f), 'utf8')]),
      junkBefore,
    );
    assert.equal(before.length, junkBefore.length);
  });
});
