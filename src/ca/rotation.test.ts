import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createManualClock } from '../lib/index.js';
import { mustSpiffeId } from '../identity/index.js';
import { createEphemeralCa, createSelfSignedCa, generateKeyPair } from './index.js';
import type { CaChange, CertificateAuthority, IssuedSvid } from './index.js';
import { opensslVerify, removeTempDir, tempDir } from './testing.js';

const ID = mustSpiffeId('spiffe://cluster.local/ns/a/sa/b');
const HOUR = 3_600_000;

describe('ca: root rotation', () => {
  let dir: string;
  let clock: ReturnType<typeof createManualClock>;
  const at = () => ['-attime', String(Math.floor(clock.now() / 1000))];
  beforeEach(() => {
    dir = tempDir();
    clock = createManualClock(Date.UTC(2026, 0, 1));
  });
  afterEach(() => removeTempDir(dir));

  const issue = (ca: CertificateAuthority, ttlMs = HOUR): IssuedSvid => {
    const r = ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey, ttlMs });
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    return r.value;
  };
  const verifies = (svid: IssuedSvid, rootPem: string) => opensslVerify(dir, svid.chainPem, rootPem, at()).status === 0;
  const kindOf = (r: { ok: boolean; error?: { kind: string } }) => (r.ok ? 'ok' : r.error!.kind);

  it('goes prepare → activate → retire, keeping old and new roots in the bundle until retired', async () => {
    const ca = createEphemeralCa({ clock });
    const changes: CaChange['kind'][] = [];
    ca.onChange((c) => changes.push(c.kind));
    const oldRoot = ca.trustBundle().rootsPem[0]!;
    const before = issue(ca);

    const p = await ca.rotateRoot('prepare');
    assert.ok(p.ok);
    assert.equal(p.value.rotation, 'prepared');
    const [r1, r2] = ca.trustBundle().rootsPem;
    assert.equal(r1, oldRoot);
    assert.ok(r2 && r2 !== oldRoot);
    assert.equal(ca.crl().length, 2, 'each issuing root publishes a CRL');
    assert.ok(verifies(issue(ca), oldRoot), 'still signing with the old root after prepare');
    assert.deepEqual(changes, ['trust-bundle', 'crl']);

    const a = await ca.rotateRoot('activate');
    assert.ok(a.ok);
    assert.equal(a.value.rotation, 'activated');
    const after = issue(ca);
    assert.ok(verifies(after, r2) && !verifies(after, oldRoot), 'signing with the new root after activate');
    assert.ok(verifies(after, ca.trustBundle().pem) && verifies(before, ca.trustBundle().pem), 'the bundle trusts both');
    assert.equal(changes.at(-1), 'signing-ca');

    clock.advance(2 * HOUR);
    const r = await ca.rotateRoot('retire');
    assert.ok(r.ok, r.ok ? '' : r.error!.message);
    assert.equal(r.value.rotation, 'none');
    assert.deepEqual(ca.trustBundle().rootsPem, [r2]);
    assert.equal(ca.crl().length, 1);
    assert.deepEqual(changes.slice(-2), ['trust-bundle', 'crl']);
  });

  it('refuses phases out of order and rotating twice without retiring', async () => {
    const ca = createEphemeralCa({ clock });
    assert.equal(kindOf(await ca.rotateRoot('activate')), 'bad-state');
    assert.equal(kindOf(await ca.rotateRoot('retire')), 'bad-state');
    assert.ok((await ca.rotateRoot('prepare')).ok);
    const twice = await ca.rotateRoot('prepare');
    assert.equal(kindOf(twice), 'bad-state');
    assert.match(!twice.ok ? twice.error.message : '', /already in progress/);
    assert.equal(kindOf(await ca.rotateRoot('retire')), 'bad-state');
    assert.ok((await ca.rotateRoot('activate')).ok);
    assert.equal(kindOf(await ca.rotateRoot('activate')), 'bad-state');
    const again = await ca.rotateRoot('prepare');
    assert.equal(kindOf(again), 'bad-state', 'rotating twice without retiring');
    assert.match(!again.ok ? again.error.message : '', /retire/);
  });

  it('refuses to retire while SVIDs signed by the old root are outstanding, unless revoked, expired or forced', async () => {
    const ca = createEphemeralCa({ clock });
    const a = issue(ca, HOUR);
    const b = issue(ca, 3 * HOUR);
    assert.ok((await ca.rotateRoot('prepare')).ok && (await ca.rotateRoot('activate')).ok);
    issue(ca, 10 * HOUR); // signed by the new root: does not block
    const early = await ca.rotateRoot('retire');
    assert.equal(kindOf(early), 'bad-state');
    assert.match(!early.ok ? early.error.message : '', /2 unexpired, unrevoked SVID/);
    assert.ok((await ca.revoke(b.serialHex)).ok);
    const still = await ca.rotateRoot('retire');
    assert.match(!still.ok ? still.error.message : '', /1 unexpired/);
    clock.advance(HOUR + 1000);
    assert.ok((await ca.rotateRoot('retire')).ok, `a (${a.serialHex}) expired, b revoked`);
  });

  it('retires early with force', async () => {
    const ca = createEphemeralCa({ clock });
    issue(ca, HOUR);
    assert.ok((await ca.rotateRoot('prepare')).ok && (await ca.rotateRoot('activate')).ok);
    assert.equal(kindOf(await ca.rotateRoot('retire')), 'bad-state');
    const forced = await ca.rotateRoot('retire', { force: true });
    assert.ok(forced.ok);
    assert.equal(ca.trustBundle().rootsPem.length, 1);
  });

  it('persists every phase in the state directory across restarts', async () => {
    const state = join(dir, 'state');
    const open = () => {
      const r = createSelfSignedCa({ stateDir: state, clock });
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      return r.value;
    };
    let ca = open();
    const old = issue(ca, HOUR);
    assert.ok((await ca.rotateRoot('prepare')).ok);
    const bundle = ca.trustBundle().pem;
    ca.close();
    ca = open();
    assert.equal(ca.status().rotation, 'prepared');
    assert.equal(ca.trustBundle().pem, bundle);
    assert.ok((await ca.rotateRoot('activate')).ok);
    ca.close();
    ca = open();
    assert.equal(ca.status().rotation, 'activated');
    const early = await ca.rotateRoot('retire');
    assert.equal(kindOf(early), 'bad-state', 'issuance records survive the restart');
    assert.ok((await ca.revoke(old.serialHex)).ok);
    assert.ok((await ca.rotateRoot('retire')).ok);
    ca.close();
    ca = open();
    assert.equal(ca.status().rotation, 'none');
    assert.equal(ca.trustBundle().rootsPem.length, 1);
    assert.deepEqual(
      readdirSync(state)
        .filter((f) => f.startsWith('root-'))
        .sort(),
      ['root-2-cert.pem', 'root-2-key.pem'],
    );
    assert.ok((await ca.rotateRoot('prepare')).ok, 'a new rotation can start after retiring');
    assert.ok(readdirSync(state).includes('root-3-key.pem'));
    ca.close();
  });
});
