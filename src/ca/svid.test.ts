import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { createManualClock } from '../lib/index.js';
import { mustSpiffeId, mustTrustDomain } from '../identity/index.js';
import { createEphemeralCa, generateKeyPair } from './index.js';
import type { CertificateAuthority, IssuedSvid } from './index.js';
import { opensslVerify, removeTempDir, tempDir } from './testing.js';

const ID = mustSpiffeId('spiffe://cluster.local/ns/photo-ns/sa/photo-frontend');
const HOUR = 3_600_000;

function parse(der: Uint8Array): pkijs.Certificate {
  return pkijs.Certificate.fromBER(der);
}

function ext(cert: pkijs.Certificate, oid: string): pkijs.Extension {
  const found = (cert.extensions ?? []).filter((e) => e.extnID === oid);
  assert.equal(found.length, 1, `exactly one extension ${oid}`);
  return found[0]!;
}

function sign(ca: CertificateAuthority, extra: Partial<Parameters<CertificateAuthority['signSvid']>[0]> = {}): IssuedSvid {
  const r = ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey, ...extra });
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return r.value;
}

describe('ca: X.509-SVID properties', () => {
  const clock = createManualClock(Date.UTC(2026, 0, 1));
  let ca: CertificateAuthority;
  let dir: string;
  before(() => {
    ca = createEphemeralCa({ clock });
    dir = tempDir();
  });
  after(() => removeTempDir(dir));

  it('has exactly one URI SAN, the SPIFFE ID, critical because the subject is empty', () => {
    const cert = parse(sign(ca).certificateDer);
    assert.equal(cert.subject.typesAndValues.length, 0);
    const san = ext(cert, '2.5.29.17');
    assert.equal(san.critical, true);
    const names = (san.parsedValue as pkijs.AltName).altNames;
    assert.deepEqual(
      names.map((n) => [n.type, n.value]),
      [[6, ID]],
    );
  });

  it('is version 3, CA=false in a critical basicConstraints', () => {
    const cert = parse(sign(ca).certificateDer);
    assert.equal(cert.version, 2);
    const bc = ext(cert, '2.5.29.19');
    assert.equal(bc.critical, true);
    assert.equal((bc.parsedValue as pkijs.BasicConstraints).cA, false);
  });

  function keyUsageBits(cert: pkijs.Certificate): { critical: boolean; bits: number[] } {
    const ku = ext(cert, '2.5.29.15');
    const bs = ku.parsedValue as asn1js.BitString;
    const bytes = new Uint8Array(bs.valueBlock.valueHexView);
    const bits: number[] = [];
    bytes.forEach((b, i) => {
      for (let j = 0; j < 8; j++) if (b & (0x80 >> j)) bits.push(i * 8 + j);
    });
    return { critical: ku.critical, bits };
  }

  // X509-SVID §3.2, §4.1, §4.3: a signing certificate has CA=true and keyCertSign (cRLSign allowed),
  // in critical extensions, no leaf usages, and, if it carries a SPIFFE ID, one without a path.
  it('makes a root that is a signing certificate by the spec: CA=true, critical keyCertSign and cRLSign, no path SPIFFE ID', () => {
    const pem = ca.trustBundle().pem;
    const root = parse(new X509Certificate(pem).raw);
    const bc = ext(root, '2.5.29.19');
    assert.equal(bc.critical, true);
    assert.equal((bc.parsedValue as pkijs.BasicConstraints).cA, true);
    assert.deepEqual(keyUsageBits(root), { critical: true, bits: [5, 6] }, 'keyCertSign and cRLSign, nothing else');
    const sans = (root.extensions ?? []).filter((e) => e.extnID === '2.5.29.17');
    for (const san of sans)
      for (const n of (san.parsedValue as pkijs.AltName).altNames)
        if (n.type === 6) assert.match(String(n.value), /^spiffe:\/\/[^/]+$/, 'a signing certificate SPIFFE ID has no path');
    assert.equal(new X509Certificate(pem).checkIssued(new X509Certificate(pem)), true, 'self-issued');
    // A leaf it signs is not a signing certificate: SPIFFE §5.2 validators check exactly this.
    const leaf = new X509Certificate(sign(ca).certificateDer);
    assert.equal(leaf.ca, false);
    assert.equal(leaf.checkIssued(new X509Certificate(pem)), true);
  });

  it('has a critical keyUsage of digitalSignature only for EC keys (no keyCertSign, no cRLSign)', () => {
    assert.deepEqual(keyUsageBits(parse(sign(ca).certificateDer)), { critical: true, bits: [0] });
  });

  it('adds keyEncipherment for RSA keys', () => {
    const svid = sign(ca, { publicKey: generateKeyPair('rsa-2048').publicKey });
    assert.deepEqual(keyUsageBits(parse(svid.certificateDer)), { critical: true, bits: [0, 2] });
    const v = opensslVerify(dir, svid.chainPem, ca.trustBundle().pem, ['-attime', String(clock.now() / 1000)]);
    assert.equal(v.status, 0, v.output);
  });

  it('has serverAuth and clientAuth extended key usage', () => {
    const eku = ext(parse(sign(ca).certificateDer), '2.5.29.37').parsedValue as pkijs.ExtKeyUsage;
    assert.deepEqual([...eku.keyPurposes].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  });

  it('has a random positive 128-bit serial, reported as hex', () => {
    const a = sign(ca);
    const b = sign(ca);
    assert.notEqual(a.serialHex, b.serialHex);
    for (const s of [a, b]) {
      const cert = parse(s.certificateDer);
      const bytes = new Uint8Array(cert.serialNumber.valueBlock.valueHexView);
      assert.equal(bytes.length, 16);
      assert.ok(bytes[0]! < 0x80 && bytes[0]! >= 0x40, 'positive, no padding byte');
      assert.equal(Buffer.from(bytes).toString('hex'), s.serialHex);
    }
  });

  it('has a subject key identifier of its key and the authority key identifier of the root', () => {
    const keys = generateKeyPair();
    const cert = parse(sign(ca, { publicKey: keys.publicKey }).certificateDer);
    const ski = ext(cert, '2.5.29.14').parsedValue as asn1js.OctetString;
    const bits = cert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView;
    assert.equal(Buffer.from(ski.valueBlock.valueHexView).toString('hex'), createHash('sha1').update(bits).digest('hex'));
    const aki = ext(cert, '2.5.29.35').parsedValue as pkijs.AuthorityKeyIdentifier;
    const root = parse(new X509Certificate(ca.trustBundle().pem).raw);
    const rootSki = ext(root, '2.5.29.14').parsedValue as asn1js.OctetString;
    assert.deepEqual(Buffer.from(aki.keyIdentifier!.valueBlock.valueHexView), Buffer.from(rootSki.valueBlock.valueHexView));
    assert.deepEqual(Buffer.from(cert.issuer.toSchema().toBER()), Buffer.from(root.subject.toSchema().toBER()));
  });

  it('carries the requested public key and a signature that verifies with the root (pkijs)', async () => {
    const keys = generateKeyPair();
    const cert = parse(sign(ca, { publicKey: keys.publicKey }).certificateDer);
    const spki = Buffer.from(cert.subjectPublicKeyInfo.toSchema().toBER());
    assert.ok(createPublicKey({ key: spki, format: 'der', type: 'spki' }).equals(keys.publicKey));
    const root = parse(new X509Certificate(ca.trustBundle().pem).raw);
    assert.equal(await cert.verify(root), true);
  });

  it('back-dates notBefore by 5 minutes and defaults to a 24 h lifetime', () => {
    const svid = sign(ca);
    const cert = parse(svid.certificateDer);
    const now = clock.now();
    assert.equal(svid.notBefore, now - 5 * 60_000);
    assert.equal(svid.notAfter, now + 24 * HOUR);
    assert.equal(cert.notBefore.value.getTime(), svid.notBefore);
    assert.equal(cert.notAfter.value.getTime(), svid.notAfter);
  });

  it('honours a requested TTL', () => {
    const svid = sign(ca, { ttlMs: HOUR });
    assert.equal(svid.notAfter, clock.now() + HOUR);
  });

  it('refuses a TTL beyond the maximum (ttl-too-long)', () => {
    const small = createEphemeralCa({ clock, maxTtlMs: 2 * HOUR });
    const r = small.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey, ttlMs: 3 * HOUR });
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.error.kind, 'ttl-too-long');
    assert.match(!r.ok ? r.error.message : '', /exceeds the maximum/);
    assert.ok(small.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey, ttlMs: 2 * HOUR }).ok);
  });

  it('refuses an identity in another trust domain (wrong-trust-domain)', () => {
    const r = ca.signSvid({ spiffeId: mustSpiffeId('spiffe://example.org/ns/a/sa/b'), publicKey: generateKeyPair().publicKey });
    assert.equal(!r.ok && r.error.kind, 'wrong-trust-domain');
    assert.match(!r.ok ? r.error.message : '', /example\.org/);
  });

  it('refuses a trust-domain-only identity, a private key, a weak key, a bad DNS name and a bad TTL (bad-request)', () => {
    const pub = generateKeyPair().publicKey;
    const cases = [
      ca.signSvid({ spiffeId: mustSpiffeId('spiffe://cluster.local'), publicKey: pub }),
      ca.signSvid({ spiffeId: ID, publicKey: generateKeyPair().privateKey }),
      ca.signSvid({ spiffeId: ID, publicKey: generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey }),
      ca.signSvid({ spiffeId: ID, publicKey: pub, dnsNames: ['bad name'] }),
      ca.signSvid({ spiffeId: ID, publicKey: pub, ipAddresses: ['127.0.0.256'] }),
      ca.signSvid({ spiffeId: ID, publicKey: pub, ipAddresses: ['fe80::1%eth0'] }),
      ca.signSvid({ spiffeId: ID, publicKey: pub, ttlMs: 0 }),
    ];
    for (const r of cases) assert.equal(!r.ok && r.error.kind, 'bad-request', JSON.stringify(r));
  });

  it('adds DNS SANs only when asked', () => {
    const names = (svid: IssuedSvid) =>
      (ext(parse(svid.certificateDer), '2.5.29.17').parsedValue as pkijs.AltName).altNames.map((n) => [n.type, n.value]);
    assert.deepEqual(names(sign(ca)), [[6, ID]]);
    assert.deepEqual(names(sign(ca, { dnsNames: ['meshpilot.meshpilot.svc', 'localhost'] })), [
      [6, ID],
      [2, 'meshpilot.meshpilot.svc'],
      [2, 'localhost'],
    ]);
  });

  it('adds IP SANs when asked, in network byte form, read back by X509Certificate and verified by openssl', () => {
    const svid = sign(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1', '2001:db8::a:b', '::ffff:10.1.2.3'] });
    assert.equal(
      new X509Certificate(svid.certificateDer).subjectAltName,
      `URI:${ID}, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:2001:DB8:0:0:0:0:A:B, IP Address:0:0:0:0:0:FFFF:A01:203`,
    );
    assert.equal(new X509Certificate(svid.certificateDer).checkIP('127.0.0.1'), '127.0.0.1');
    const v = opensslVerify(dir, svid.chainPem, ca.trustBundle().pem, [
      '-purpose',
      'sslserver',
      '-verify_ip',
      '127.0.0.1',
      '-attime',
      String(clock.now() / 1000),
    ]);
    assert.equal(v.status, 0, v.output);
  });

  it('never starts before the CA or ends after it', () => {
    const start = Date.UTC(2026, 0, 1);
    const c = createManualClock(start);
    const short = createEphemeralCa({ clock: c, rootValidityMs: 2 * HOUR, backdateMs: 3 * HOUR });
    const svid = sign(short);
    const root = new X509Certificate(short.trustBundle().pem);
    assert.equal(svid.notBefore, Date.parse(root.validFrom));
    assert.equal(svid.notAfter, Date.parse(root.validTo));
  });

  it('passes openssl verify -x509_strict for TLS client and server purposes', () => {
    const svid = sign(ca, { dnsNames: ['localhost'] });
    for (const purpose of ['sslclient', 'sslserver']) {
      const v = opensslVerify(dir, svid.chainPem, ca.trustBundle().pem, ['-purpose', purpose, '-attime', String(clock.now() / 1000)]);
      assert.equal(v.status, 0, v.output);
    }
  });

  it('rejects the trust-domain mismatch in another CA', () => {
    const other = createEphemeralCa({ clock, trustDomain: mustTrustDomain('example.org') });
    assert.equal(other.trustDomain, 'example.org');
    const r = other.signSvid({ spiffeId: ID, publicKey: generateKeyPair().publicKey });
    assert.equal(!r.ok && r.error.kind, 'wrong-trust-domain');
  });
});
