// Loading and checking CA material (certificates and keys) from PEM, and making new roots.
// Rule: the CA never signs with material it could not verify, and every error names the file.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { err, fsErrorText, ok } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import { fromPem, toPem } from './der.js';
import { describeKey, publicOf, signatureAlgorithmFor } from './keys.js';
import type { CaSigningKey, ExternalSigningKey, SignatureAlgorithm } from './keys.js';
import { caError } from './types.js';
import type { CaError, CertificateSummary } from './types.js';
import {
  authorityKeyIdentifier,
  basicConstraints,
  basicConstraintsCa,
  buildCertificate,
  keyIdentifier,
  keyUsage,
  KeyUsage,
  keyUsageBits,
  name,
  OID,
  randomSerial,
  readCertificate,
  subjectKeyIdentifier,
  subjectKeyIdOf,
} from './x509.js';
import type { CertificateInfo } from './x509.js';

/** A parsed certificate: DER, PEM, our decoded fields and Node's view of it. */
export interface ParsedCertificate {
  readonly der: Buffer;
  readonly pem: string;
  readonly info: CertificateInfo;
  readonly x509: X509Certificate;
  readonly keyId: Buffer;
  readonly summary: CertificateSummary;
}

/** A CA certificate with its private key, checked to match: it can sign. */
export interface SigningCa extends ParsedCertificate {
  /** In process, or in a PKCS#11 token (never exported). */
  readonly key: CaSigningKey;
  readonly alg: SignatureAlgorithm;
  /** Whether its keyUsage allows signing CRLs (RFC 5280 4.2.1.3 cRLSign). */
  readonly canSignCrl: boolean;
}

/** Istio's plug-in CA file names. */
export const PLUGIN_FILES = { caCert: 'ca-cert.pem', caKey: 'ca-key.pem', rootCert: 'root-cert.pem', certChain: 'cert-chain.pem' } as const;

const oneLine = (dn: string): string => dn.split('\n').filter(Boolean).join(', ');

/** Parses every certificate in a PEM text; an error names the file and the certificate's position. */
export function parseCertificates(pem: string, file: string): Result<ParsedCertificate[], CaError> {
  const ders = fromPem('CERTIFICATE', pem);
  if (ders.length === 0) return err(caError('bad-material', `${file}: no PEM certificate found`, file));
  const out: ParsedCertificate[] = [];
  for (const [i, der] of ders.entries()) {
    const where = ders.length > 1 ? `${file} (certificate ${i + 1})` : file;
    try {
      const x509 = new X509Certificate(der);
      const info = readCertificate(der);
      out.push({
        der,
        pem: toPem('CERTIFICATE', der),
        info,
        x509,
        keyId: subjectKeyIdOf(info),
        summary: {
          subject: oneLine(x509.subject),
          serialHex: info.serialHex,
          notBefore: info.notBefore,
          notAfter: info.notAfter,
          fingerprint256: x509.fingerprint256,
          pem: toPem('CERTIFICATE', der),
        },
      });
    } catch (e) {
      return err(caError('bad-material', `${where}: not a valid X.509 certificate (${(e as Error).message})`, file));
    }
  }
  return ok(out);
}

/** Checks that a certificate may act as a CA now: basicConstraints CA true, keyCertSign, within its validity. */
export function checkCaCertificate(c: ParsedCertificate, file: string, now: number): Result<void, CaError> {
  if (!basicConstraintsCa(c.info))
    return err(caError('bad-material', `${file}: certificate '${c.summary.subject}' is not a CA (basicConstraints CA is not true)`, file));
  const ku = keyUsageBits(c.info);
  if (ku && !ku.has(KeyUsage.keyCertSign)) {
    return err(caError('bad-material', `${file}: CA certificate '${c.summary.subject}' lacks the keyCertSign key usage`, file));
  }
  if (now < c.info.notBefore) {
    return err(
      caError(
        'bad-material',
        `${file}: CA certificate '${c.summary.subject}' is not valid until ${new Date(c.info.notBefore).toISOString()}`,
        file,
      ),
    );
  }
  if (now >= c.info.notAfter) {
    return err(
      caError('bad-material', `${file}: CA certificate '${c.summary.subject}' expired at ${new Date(c.info.notAfter).toISOString()}`, file),
    );
  }
  return ok(undefined);
}

/** Parses a private key PEM (PKCS#8, SEC1 or PKCS#1) and checks its strength; the error names the file. */
export function parsePrivateKey(pem: string, file: string): Result<KeyObject, CaError> {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (e) {
    return err(caError('bad-material', `${file}: not a valid PEM private key (${(e as Error).message})`, file));
  }
  const d = describeKey(key);
  if (!d.ok) return err(caError('bad-material', `${file}: ${d.error}`, file));
  return ok(key);
}

/** Loads a signing CA from certificate and key PEM: the key must match, and the certificate must be a usable CA now. */
export function loadSigningCa(
  certPem: string,
  keyPem: string,
  where: { readonly certFile: string; readonly keyFile: string },
  now: number,
): Result<SigningCa, CaError> {
  const certs = parseCertificates(certPem, where.certFile);
  if (!certs.ok) return certs;
  if (certs.value.length !== 1) {
    return err(caError('bad-material', `${where.certFile}: expected one certificate, found ${certs.value.length}`, where.certFile));
  }
  const cert = certs.value[0]!;
  const key = parsePrivateKey(keyPem, where.keyFile);
  if (!key.ok) return key;
  if (!cert.x509.checkPrivateKey(key.value)) {
    return err(caError('bad-material', `${where.keyFile}: private key does not match the certificate in ${where.certFile}`, where.keyFile));
  }
  const checked = checkCaCertificate(cert, where.certFile, now);
  if (!checked.ok) return checked;
  const desc = describeKey(key.value);
  if (!desc.ok) return err(caError('bad-material', `${where.keyFile}: ${desc.error}`, where.keyFile));
  const ku = keyUsageBits(cert.info);
  return ok({ ...cert, key: key.value, alg: signatureAlgorithmFor(desc.value), canSignCrl: !ku || ku.has(KeyUsage.cRLSign) });
}

/** Loads a signing CA whose key is held in a token: the certificate must be for that key, and a usable CA now. */
export function loadSigningCaWithExternalKey(
  certPem: string,
  key: ExternalSigningKey,
  certFile: string,
  now: number,
): Result<SigningCa, CaError> {
  const certs = parseCertificates(certPem, certFile);
  if (!certs.ok) return certs;
  if (certs.value.length !== 1) {
    return err(caError('bad-material', `${certFile}: expected one certificate, found ${certs.value.length}`, certFile));
  }
  const cert = certs.value[0]!;
  if (!cert.info.spki.equals(key.publicKey.export({ type: 'spki', format: 'der' }))) {
    return err(caError('bad-material', `${certFile}: the certificate is not for the key ${key.description}`, certFile));
  }
  const checked = checkCaCertificate(cert, certFile, now);
  if (!checked.ok) return checked;
  const desc = describeKey(key.publicKey);
  if (!desc.ok) return err(caError('bad-material', `${key.description}: ${desc.error}`, certFile));
  const ku = keyUsageBits(cert.info);
  return ok({ ...cert, key, alg: signatureAlgorithmFor(desc.value), canSignCrl: !ku || ku.has(KeyUsage.cRLSign) });
}

/** Makes a new self-signed ECDSA root for the trust domain, valid from an hour back for validityMs. */
export function createRootCa(opts: {
  trustDomain: string;
  label: string;
  keys: { readonly privateKey: CaSigningKey; readonly publicKey: KeyObject };
  now: number;
  validityMs: number;
}): SigningCa {
  const spki = publicOf(opts.keys.publicKey).export({ type: 'spki', format: 'der' });
  const kid = keyIdentifier(spki);
  const subject = name([
    [OID.organization, opts.trustDomain],
    [OID.commonName, opts.label],
  ]);
  const desc = describeKey(opts.keys.publicKey);
  if (!desc.ok) throw new Error(`root key rejected: ${desc.error}`);
  const alg = signatureAlgorithmFor(desc.value);
  const second = (ms: number) => Math.floor(ms / 1000) * 1000;
  const der = buildCertificate(
    {
      serial: randomSerial(),
      issuer: subject,
      subject,
      notBefore: second(opts.now - 3_600_000),
      notAfter: second(opts.now + opts.validityMs),
      spki,
      extensions: [
        basicConstraints(true),
        keyUsage([KeyUsage.keyCertSign, KeyUsage.cRLSign]),
        subjectKeyIdentifier(kid),
        authorityKeyIdentifier(kid),
      ],
    },
    alg,
    opts.keys.privateKey,
  );
  const parsed = parseCertificates(toPem('CERTIFICATE', der), opts.label);
  if (!parsed.ok) throw new Error(`built an unparsable root: ${parsed.error.message}`);
  return { ...parsed.value[0]!, key: opts.keys.privateKey, alg, canSignCrl: true };
}

/** Whether `issuer` signed `cert`: names chain and the signature verifies with the issuer's key. */
export function issuedBy(cert: ParsedCertificate, issuer: ParsedCertificate): boolean {
  try {
    return cert.x509.checkIssued(issuer.x509) && cert.x509.verify(issuer.x509.publicKey);
  } catch {
    return false;
  }
}

/** A plug-in CA loaded from Istio's four files and verified: the signing CA, its intermediates and the roots. */
export interface PluginMaterial {
  readonly signing: SigningCa;
  /** Certificates between the signing CA and the root, excluding both. */
  readonly intermediates: readonly ParsedCertificate[];
  readonly roots: readonly ParsedCertificate[];
}

/**
 * Loads and verifies a plug-in CA directory (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem).
 * With an external key (a PKCS#11 token) ca-key.pem is not read: ca-cert.pem must be for the token's key.
 */
export function loadPluginCa(dir: string, now: number, externalKey?: ExternalSigningKey): Result<PluginMaterial, CaError> {
  const files = {} as Record<keyof typeof PLUGIN_FILES, string>;
  for (const [k, f] of Object.entries(PLUGIN_FILES) as [keyof typeof PLUGIN_FILES, string][]) {
    if (externalKey && k === 'caKey') continue;
    const path = join(dir, f);
    try {
      files[k] = readFileSync(path, 'utf8');
    } catch (e) {
      return err(caError('bad-material', `${path}: cannot read plug-in CA file: ${fsErrorText(e)}`, path));
    }
  }
  const p = (f: string) => join(dir, f);
  const signing = externalKey
    ? loadSigningCaWithExternalKey(files.caCert, externalKey, p(PLUGIN_FILES.caCert), now)
    : loadSigningCa(files.caCert, files.caKey, { certFile: p(PLUGIN_FILES.caCert), keyFile: p(PLUGIN_FILES.caKey) }, now);
  if (!signing.ok) return signing;
  const roots = parseCertificates(files.rootCert, p(PLUGIN_FILES.rootCert));
  if (!roots.ok) return roots;
  for (const r of roots.value) {
    const c = checkCaCertificate(r, p(PLUGIN_FILES.rootCert), now);
    if (!c.ok) return c;
    if (!issuedBy(r, r))
      return err(
        caError('bad-material', `${p(PLUGIN_FILES.rootCert)}: '${r.summary.subject}' is not a self-signed root`, p(PLUGIN_FILES.rootCert)),
      );
  }
  const chain = parseCertificates(files.certChain, p(PLUGIN_FILES.certChain));
  if (!chain.ok) return chain;
  const chainFile = p(PLUGIN_FILES.certChain);
  // Istio's cert-chain.pem is ca-cert.pem followed by its issuers, optionally ending with the root.
  if (!chain.value[0]!.der.equals(signing.value.der)) {
    return err(
      caError('bad-material', `${chainFile}: the first certificate must be the CA certificate of ${PLUGIN_FILES.caCert}`, chainFile),
    );
  }
  const isRoot = (c: ParsedCertificate) => roots.value.some((r) => r.der.equals(c.der));
  const intermediates: ParsedCertificate[] = [];
  let current: ParsedCertificate = signing.value;
  for (const next of chain.value.slice(1)) {
    if (!issuedBy(current, next)) {
      return err(
        caError(
          'bad-material',
          `${chainFile}: '${current.summary.subject}' is not signed by the next certificate '${next.summary.subject}'`,
          chainFile,
        ),
      );
    }
    if (isRoot(next)) break;
    const c = checkCaCertificate(next, chainFile, now);
    if (!c.ok) return c;
    intermediates.push(next);
    current = next;
  }
  const anchor = roots.value.find((r) => issuedBy(current, r));
  if (!anchor) {
    return err(
      caError(
        'bad-material',
        `${chainFile}: the chain from ${PLUGIN_FILES.caCert} does not verify to any root in ${PLUGIN_FILES.rootCert} (ends at '${current.summary.subject}')`,
        chainFile,
      ),
    );
  }
  return ok({ signing: signing.value, intermediates, roots: roots.value });
}
