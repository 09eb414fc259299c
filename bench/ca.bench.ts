// CA hot path benchmark: SVID issuance (public key in, signed DER chain out) against the
// floor, a raw crypto.sign over a blob of the same size with the same cached CA key,
// measured in the same run. The pkijs object-model issuer (the previous design) is
// measured too, for information. With SoftHSM2 installed, issuance with the root key in a
// PKCS#11 token is measured against the in-process key in the same run, and the binding's
// synchronous C_Sign against its C_SignAsync (worker-pool) form.
import { createHash, sign, webcrypto } from 'node:crypto';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import type { KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { createEphemeralCa, createSelfSignedCa, generateKeyPair, generatePkcs11Key } from '../src/ca/index.js';
import { createSoftHsm, softHsmInstalled } from '../src/ca/softhsm-kit.js';
import { removeTempDir, tempDir } from '../src/ca/testing.js';
import type { KeyPair } from '../src/ca/index.js';
import { mustSpiffeId } from '../src/identity/index.js';
import { interleavedRates } from './lib/measure.js';
import { result } from './lib/report.js';
import type { BenchResult } from './lib/report.js';

const RUN_MS = 1500;
const WARMUP_MS = 200;

/** Calls f repeatedly for about ms milliseconds; returns calls per second. */
async function rate(ms: number, f: () => unknown | Promise<unknown>): Promise<number> {
  const deadline = performance.now() + ms;
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < 32; i++) await f();
    n += 32;
    now = performance.now();
  }
  return n / ((now - start) / 1000);
}

function syncRate(ms: number, f: () => unknown): number {
  const start = performance.now();
  const deadline = start + ms;
  let n = 0;
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < 32; i++) f();
    n += 32;
    now = performance.now();
  }
  return n / ((now - start) / 1000);
}

/** The SVID the previous design built: the same fields through pkijs' object model, signed by pkijs over WebCrypto. */
async function pkijsIssuer(caKeys: KeyPair, rootPem: string): Promise<(pub: KeyObject) => Promise<ArrayBuffer>> {
  const rootDer = Buffer.from(rootPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const root = pkijs.Certificate.fromBER(rootDer);
  const rootSki = root.extensions!.find((e) => e.extnID === '2.5.29.14')!.parsedValue as asn1js.OctetString;
  const pkcs8 = caKeys.privateKey.export({ type: 'pkcs8', format: 'der' });
  const cryptoKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const id = 'spiffe://cluster.local/ns/bench/sa/bench';
  return async (pub) => {
    const cert = new pkijs.Certificate();
    cert.version = 2;
    const serial = webcrypto.getRandomValues(new Uint8Array(16));
    serial[0] = (serial[0]! & 0x3f) | 0x40;
    cert.serialNumber = new asn1js.Integer({ valueHex: serial });
    cert.issuer = root.subject;
    const now = Date.now();
    cert.notBefore.value = new Date(now - 300_000);
    cert.notAfter.value = new Date(now + 86_400_000);
    const spki = pub.export({ type: 'spki', format: 'der' });
    cert.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(spki);
    const ski = await webcrypto.subtle.digest('SHA-1', cert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView);
    cert.extensions = [
      new pkijs.Extension({
        extnID: '2.5.29.19',
        critical: true,
        extnValue: new pkijs.BasicConstraints({ cA: false }).toSchema().toBER(false),
      }),
      new pkijs.Extension({
        extnID: '2.5.29.15',
        critical: true,
        extnValue: new asn1js.BitString({ valueHex: new Uint8Array([0x80]), unusedBits: 7 }).toBER(false),
      }),
      new pkijs.Extension({
        extnID: '2.5.29.37',
        extnValue: new pkijs.ExtKeyUsage({ keyPurposes: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'] }).toSchema().toBER(false),
      }),
      new pkijs.Extension({ extnID: '2.5.29.14', extnValue: new asn1js.OctetString({ valueHex: ski }).toBER(false) }),
      new pkijs.Extension({
        extnID: '2.5.29.35',
        extnValue: new pkijs.AuthorityKeyIdentifier({
          keyIdentifier: new asn1js.OctetString({ valueHex: rootSki.valueBlock.valueHexView }),
        })
          .toSchema()
          .toBER(false),
      }),
      new pkijs.Extension({
        extnID: '2.5.29.17',
        critical: true,
        extnValue: new pkijs.AltName({ altNames: [new pkijs.GeneralName({ type: 6, value: id })] }).toSchema().toBER(false),
      }),
    ];
    await cert.sign(cryptoKey, 'SHA-256');
    return cert.toSchema(true).toBER(false);
  };
}

/** Measures SVID issuance per second as a ratio of raw signing with the same cached key. */
export async function run(): Promise<BenchResult[]> {
  const caKeys = generateKeyPair('ec-p256');
  const ca = createEphemeralCa({ generateKey: () => caKeys });
  const pubs = Array.from({ length: 64 }, () => generateKeyPair('ec-p256').publicKey);
  // The CSR service has each key's SPKI bytes from the CSR and hands them over as they are.
  const spkis = pubs.map((p) => p.export({ type: 'spki', format: 'der' }));
  const id = mustSpiffeId('spiffe://cluster.local/ns/bench/sa/bench');
  let i = 0;
  const issue = () => {
    const k = i++ & 63;
    const r = ca.signSvid({ spiffeId: id, publicKey: pubs[k]!, spkiDer: spkis[k]! });
    if (!r.ok) throw new Error(r.error.message);
    return r.value;
  };
  const issueFromKeyObject = () => {
    const r = ca.signSvid({ spiffeId: id, publicKey: pubs[i++ & 63]! });
    if (!r.ok) throw new Error(r.error.message);
    return r.value;
  };
  const sample = issue();
  const certAsn = asn1js.fromBER(sample.certificateDer).result as asn1js.Sequence;
  const tbsLen = certAsn.valueBlock.value[0]!.valueBeforeDecodeView.byteLength;
  const blob = Buffer.alloc(tbsLen, 0x5a);
  const rawSign = () => sign('sha256', blob, caKeys.privateKey);

  syncRate(WARMUP_MS, rawSign);
  syncRate(WARMUP_MS, issue);
  const [floor, hot] = interleavedRates(RUN_MS, rawSign, issue);
  syncRate(WARMUP_MS, issueFromKeyObject);
  const [floor2, fromKey] = interleavedRates(RUN_MS / 2, rawSign, issueFromKeyObject);

  const viaPkijs = await pkijsIssuer(caKeys, ca.trustBundle().pem);
  await rate(WARMUP_MS, () => viaPkijs(pubs[i++ & 63]!));
  const pk = await rate(RUN_MS, () => viaPkijs(pubs[i++ & 63]!));

  const hsmRows = softHsmInstalled()
    ? await hsmIssuance(pubs, spkis)
    : [
        result({
          name: 'ca svid issuance, root key in SoftHSM2 (PKCS#11 C_Sign)',
          value: Number.NaN,
          unit: 'svid/s',
          baseline: { name: 'svid issuance, root key in process (state directory)', value: Number.NaN },
          skipped: 'SoftHSM2 is not installed (as root: make softhsm)',
        }),
      ];
  ca.close();

  const baseline = { name: `crypto.sign ECDSA P-256 over ${tbsLen} B, same cached key`, value: floor };
  return [
    result({
      name: 'ca svid issuance (hot path: direct DER, cached key)',
      value: hot,
      unit: 'svid/s',
      baseline,
      target: '>= 0.60',
      note: 'public key in (its SPKI bytes, as the CSR service has them from the CSR), signed DER chain out, through CertificateAuthority.signSvid (ephemeral backend)',
    }),
    result({
      name: 'ca svid issuance from a KeyObject (sidecar path: key exported to SPKI per call)',
      value: fromKey,
      unit: 'svid/s',
      baseline: { ...baseline, value: floor2 },
      note: 'the same, when only a KeyObject is at hand; Node exports it to SPKI on every call',
    }),
    result({
      name: 'ca svid issuance via pkijs object model (previous design)',
      value: pk,
      unit: 'svid/s',
      baseline,
      note: 'for information: the same certificate built and signed through pkijs/asn1js and WebCrypto',
    }),
    ...hsmRows,
  ];
}

/** SVID issuance with the root key in a SoftHSM2 token, against the in-process key, interleaved in one run; then raw C_Sign, sync and async. */
async function hsmIssuance(pubs: readonly KeyObject[], spkis: readonly Buffer[]): Promise<BenchResult[]> {
  const hsm = createSoftHsm({ tokenLabel: 'bench' });
  const dir = tempDir();
  try {
    const ref = { module: hsm.module, tokenLabel: hsm.tokenLabel, keyLabel: 'bench-root', pin: hsm.pin };
    const pub = generatePkcs11Key(ref);
    if (!pub.ok) throw new Error(pub.error);
    // Both CAs keep a state directory (each issuance is journaled), so only where the key is differs.
    const hsmCa = createSelfSignedCa({ stateDir: join(dir, 'hsm-state'), pkcs11: ref });
    if (!hsmCa.ok) throw new Error(hsmCa.error.message);
    const fileCa = createSelfSignedCa({ stateDir: join(dir, 'file-state') });
    if (!fileCa.ok) throw new Error(fileCa.error.message);
    const id = mustSpiffeId('spiffe://cluster.local/ns/bench/sa/bench');
    let i = 0;
    const issuer = (ca: typeof hsmCa.value) => () => {
      const k = i++ & 63;
      const r = ca.signSvid({ spiffeId: id, publicKey: pubs[k]!, spkiDer: spkis[k]! });
      if (!r.ok) throw new Error(r.error.message);
      return r.value;
    };
    const issueHsm = issuer(hsmCa.value);
    const issueFile = issuer(fileCa.value);
    syncRate(WARMUP_MS, issueHsm);
    syncRate(WARMUP_MS, issueFile);
    const [soft, viaToken] = interleavedRates(RUN_MS, issueFile, issueHsm);
    hsmCa.value.close();
    fileCa.value.close();
    const [syncSign, asyncSign] = await rawTokenSigning(ref);
    const inProcessBaseline = { name: 'svid issuance, root key in process (state directory)', value: soft };
    const syncBaseline = { name: 'C_Sign (synchronous), one session', value: syncSign };
    return [
      result({
        name: 'ca svid issuance, root key in SoftHSM2 (PKCS#11 C_Sign)',
        value: viaToken,
        unit: 'svid/s',
        baseline: inProcessBaseline,
        note: 'the same hot path; the signature is made in the token over a SHA-256 digest and converted from r||s to DER',
      }),
      result({
        name: 'pkcs11 C_SignAsync, 4 in flight (one session each), SoftHSM2',
        value: asyncSign,
        unit: 'sign/s',
        baseline: syncBaseline,
        note: 'for information: the binding runs async calls on the libuv pool; the CA signs synchronously (see README)',
      }),
    ];
  } finally {
    removeTempDir(dir);
    hsm.remove();
  }
}

/** Raw ECDSA signatures per second through pkcs11js: synchronous C_Sign on one session, and C_SignAsync with four sessions in flight. */
async function rawTokenSigning(ref: { module: string; tokenLabel: string; keyLabel: string; pin: string }): Promise<[number, number]> {
  const p = new pkcs11js.PKCS11();
  p.load(ref.module);
  // Four sessions signing on worker threads at once: the module must lock (PKCS#11 v2.40 5.4).
  p.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  try {
    const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trimEnd() === ref.tokenLabel)!;
    const sessions = [0, 1, 2, 3].map(() => p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION));
    p.C_Login(sessions[0]!, pkcs11js.CKU_USER, ref.pin);
    p.C_FindObjectsInit(sessions[0]!, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_LABEL, value: ref.keyLabel },
    ]);
    const [key] = p.C_FindObjects(sessions[0]!, 1);
    p.C_FindObjectsFinal(sessions[0]!);
    const digest = createHash('sha256').update('bench').digest();
    const mech = { mechanism: pkcs11js.CKM_ECDSA };
    const syncSign = () => {
      p.C_SignInit(sessions[0]!, mech, key!);
      return p.C_Sign(sessions[0]!, digest, Buffer.allocUnsafe(64));
    };
    syncRate(WARMUP_MS, syncSign);
    const syncRateValue = syncRate(RUN_MS, syncSign);
    const start = performance.now();
    let n = 0;
    await Promise.all(
      sessions.map(async (s) => {
        while (performance.now() - start < RUN_MS) {
          p.C_SignInit(s, mech, key!);
          await p.C_SignAsync(s, digest, Buffer.allocUnsafe(64));
          n++;
        }
      }),
    );
    const asyncRateValue = n / ((performance.now() - start) / 1000);
    for (const s of sessions) p.C_CloseSession(s);
    return [syncRateValue, asyncRateValue];
  } finally {
    p.C_Finalize();
    p.close();
  }
}
