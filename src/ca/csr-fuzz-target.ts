// The CSR parser under fuzzing (make fuzz; a short run in make test). Two kinds of input:
// envelopes and DER mutated byte-wise from valid CSRs (mostly stopped by the PEM, DER and
// signature checks), and CSRs that are properly signed but ask for anything (random SANs of
// every type, random extensions with mutated values, weak and odd keys), which reach the
// extension readers behind the signature check. parseCsr must never throw, and every refusal
// is a `bad-csr` error with a message.
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { makeCsr } from '../csr/index.js';
import { mutateBytes, mutateText, type FuzzTarget, type Random } from '../fuzz/index.js';
import { parseCsr } from './csr.js';

const PEM_TOKENS = [
  '-----BEGIN CERTIFICATE REQUEST-----\n',
  '-----END CERTIFICATE REQUEST-----\n',
  '-----BEGIN CERTIFICATE-----\n',
  '-----END CERTIFICATE-----\n',
  '-----BEGIN NEW CERTIFICATE REQUEST-----',
  '=',
  '==',
  '\r\n',
  '\n',
  ' ',
  'A',
  '/',
  '+',
  '\u0000',
  'é',
];
// OIDs a client may ask for: SAN, basicConstraints, keyUsage, extKeyUsage, nameConstraints,
// subject key id, authority info access, certificate policies, an unknown private one.
const OIDS = [
  '2.5.29.17',
  '2.5.29.19',
  '2.5.29.15',
  '2.5.29.37',
  '2.5.29.30',
  '2.5.29.14',
  '1.3.6.1.5.5.7.1.1',
  '2.5.29.32',
  '1.3.6.1.4.1.99999.1',
];
// DER values of those extensions, valid ones to mutate from.
const EXTENSION_VALUES = [
  '3021861f7370696666653a2f2f636c75737465722e6c6f63616c2f6e732f612f73612f62', // SAN: one URI
  '30068704 7f000001'.replace(' ', ''), // SAN: an IP address
  '3010810e61406578616d706c652e636f6d', // SAN: an email
  '30030101ff', // basicConstraints CA=true
  '3000', // basicConstraints CA=false
  '03020186', // keyUsage digitalSignature, keyCertSign, cRLSign
  '03020780', // keyUsage digitalSignature
  '301406082b0601050507030106082b06010505070302', // extKeyUsage serverAuth, clientAuth
  '300ea00c300a82086578616d706c65', // nameConstraints permitted DNS example
].map((h) => Buffer.from(h, 'hex'));
const DER_TOKENS = [
  ...EXTENSION_VALUES,
  Buffer.from('0500', 'hex'),
  Buffer.from('3080', 'hex'),
  Buffer.from('0000', 'hex'),
  Buffer.from('84ffffffff', 'hex'),
];
const SAN_WORDS = [
  'spiffe://',
  'cluster.local',
  '/ns/',
  '/sa/',
  'istio-system',
  'meshpilot',
  '%2F',
  '..',
  '/',
  ':',
  '@',
  '?',
  '#',
  '\u0000',
  'A'.repeat(300),
  'é',
  ' ',
];

let keys: KeyObject[] = [];

function randomSan(rng: Random): string {
  let s = '';
  for (let i = 0, n = rng.int(8); i < n; i++) s += rng.pick(SAN_WORDS);
  return s;
}

function signedCsr(rng: Random): string {
  const extra = Array.from({ length: rng.int(4) }, () => {
    const value = rng.pick(EXTENSION_VALUES);
    return { oid: rng.pick(OIDS), critical: rng.chance(0.3), der: rng.chance(0.5) ? value : mutateBytes(value, rng, DER_TOKENS) };
  });
  return makeCsr({
    privateKey: rng.pick(keys),
    uriSans: Array.from({ length: rng.int(3) }, () => randomSan(rng)),
    dnsSans: Array.from({ length: rng.int(2) }, () => randomSan(rng)),
    requestCa: rng.chance(0.1),
    ...(rng.chance(0.3) ? { organization: randomSan(rng) } : {}),
    extraExtensions: extra,
  });
}

const derOf = (pem: string) => Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
const pemOf = (der: Uint8Array) =>
  `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from(der)
    .toString('base64')
    .replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE REQUEST-----\n`;

/** The CSR parser as a fuzz target. */
export const target: FuzzTarget<string> = {
  async seeds() {
    keys = [
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
      generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey,
      generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
      // Refused keys: a weak RSA key and a curve meshpilot does not take.
      generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey,
      createPrivateKey(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey.export({ type: 'pkcs8', format: 'pem' })),
    ];
    return [
      makeCsr({ privateKey: keys[0]!, uriSans: ['spiffe://cluster.local/ns/photo-ns/sa/photo-backend'] }),
      makeCsr({ privateKey: keys[2]!, uriSans: ['spiffe://cluster.local/ns/a/sa/b'], dnsSans: ['b.a.svc'], organization: 'cluster.local' }),
      makeCsr({ privateKey: keys[1]!, uriSans: [], requestCa: true }),
    ];
  },
  generate(seeds, rng) {
    const kind = rng.int(10);
    if (kind < 4) return signedCsr(rng);
    if (kind < 8) return pemOf(mutateBytes(derOf(rng.pick(seeds)), rng, DER_TOKENS));
    return mutateText(rng.pick(seeds), rng, PEM_TOKENS);
  },
  async check(pem) {
    let r: Awaited<ReturnType<typeof parseCsr>>;
    try {
      r = await parseCsr(pem);
    } catch (e) {
      throw new Error(`parseCsr threw instead of refusing: ${(e as Error).stack ?? String(e)}`, { cause: e });
    }
    if (!r.ok) {
      if (r.error.kind !== 'bad-csr' || r.error.message.trim() === '')
        throw new Error(`a refusal without a bad-csr message: ${JSON.stringify(r.error)}`);
      return 'rejected';
    }
    const v = r.value;
    if (v.requestsCa !== v.caRequests.length > 0)
      throw new Error(`requestsCa ${v.requestsCa} but caRequests ${JSON.stringify(v.caRequests)}`);
    if (![...v.uriSans, ...v.dnsSans, ...v.otherSans].every((s) => typeof s === 'string')) throw new Error('a SAN that is not a string');
    return 'accepted';
  },
  describe: (pem) => pem,
};
