// Test support for the ca module: temp dirs, openssl, and plug-in CA material made with
// our own builders (so tests can make broken material on purpose). Not exported from index.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toPem } from './der.js';
import { describeKey, generateKeyPair, publicOf, signatureAlgorithmFor } from './keys.js';
import type { KeyPair } from './keys.js';
import { PLUGIN_FILES } from './material.js';
import {
  authorityKeyIdentifier,
  basicConstraints,
  buildCertificate,
  keyIdentifier,
  keyUsage,
  KeyUsage,
  name,
  OID,
  randomSerial,
  subjectKeyIdentifier,
} from './x509.js';

/** Makes a temp dir; remove it with removeTempDir. */
export const tempDir = (prefix = 'meshpilot-ca-'): string => mkdtempSync(join(tmpdir(), prefix));

/** Removes a temp dir made by tempDir. */
export const removeTempDir = (dir: string): void => rmSync(dir, { recursive: true, force: true });

/** Runs openssl; returns exit status and combined output. */
export function openssl(args: readonly string[]): { status: number; output: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

/** Verifies a leaf with `openssl verify -x509_strict`, trusting rootPem and using the rest of the chain as untrusted. */
export function opensslVerify(
  dir: string,
  chainPem: readonly string[],
  rootPem: string,
  extra: readonly string[] = [],
): { status: number; output: string } {
  writeFileSync(join(dir, 'v-root.pem'), rootPem);
  writeFileSync(join(dir, 'v-leaf.pem'), chainPem[0]!);
  const args = ['verify', '-x509_strict', '-CAfile', join(dir, 'v-root.pem'), ...extra];
  if (chainPem.length > 1) {
    writeFileSync(join(dir, 'v-untrusted.pem'), chainPem.slice(1).join(''));
    args.push('-untrusted', join(dir, 'v-untrusted.pem'));
  }
  return openssl([...args, join(dir, 'v-leaf.pem')]);
}

/** A CA certificate with its keys, made for tests. */
export interface TestCa {
  readonly keys: KeyPair;
  readonly pem: string;
  readonly subject: Buffer;
  readonly keyId: Buffer;
}

/** Makes a CA certificate (root when issuer is absent) with knobs to break it on purpose. */
export function makeTestCa(opts: {
  readonly cn: string;
  readonly issuer?: TestCa;
  readonly now: number;
  readonly notBefore?: number;
  readonly notAfter?: number;
  readonly ca?: boolean;
  readonly usages?: readonly number[];
  readonly keys?: KeyPair;
}): TestCa {
  const keys = opts.keys ?? generateKeyPair('ec-p256');
  const spki = publicOf(keys.publicKey).export({ type: 'spki', format: 'der' });
  const kid = keyIdentifier(spki);
  const subject = name([
    [OID.organization, 'meshpilot test'],
    [OID.commonName, opts.cn],
  ]);
  const signer = opts.issuer?.keys ?? keys;
  const desc = describeKey(signer.privateKey);
  if (!desc.ok) throw new Error(desc.error);
  const der = buildCertificate(
    {
      serial: randomSerial(),
      issuer: opts.issuer?.subject ?? subject,
      subject,
      notBefore: Math.floor((opts.notBefore ?? opts.now - 3_600_000) / 1000) * 1000,
      notAfter: Math.floor((opts.notAfter ?? opts.now + 365 * 86_400_000) / 1000) * 1000,
      spki,
      extensions: [
        basicConstraints(opts.ca ?? true),
        keyUsage(opts.usages ?? [KeyUsage.keyCertSign, KeyUsage.cRLSign]),
        subjectKeyIdentifier(kid),
        authorityKeyIdentifier(opts.issuer?.keyId ?? kid),
      ],
    },
    signatureAlgorithmFor(desc.value),
    signer.privateKey,
  );
  return { keys, pem: toPem('CERTIFICATE', der), subject, keyId: kid };
}

/** Writes Istio's four plug-in files for a root and an intermediate (overrides replace individual files). */
export function writePluginDir(
  dir: string,
  root: TestCa,
  intermediate: TestCa,
  overrides: Partial<Record<keyof typeof PLUGIN_FILES, string>> = {},
): void {
  const files: Record<keyof typeof PLUGIN_FILES, string> = {
    caCert: intermediate.pem,
    caKey: intermediate.keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    rootCert: root.pem,
    certChain: intermediate.pem + root.pem,
    ...overrides,
  };
  for (const [k, f] of Object.entries(PLUGIN_FILES) as [keyof typeof PLUGIN_FILES, string][]) writeFileSync(join(dir, f), files[k]);
}

/** Makes a CSR with openssl for the key file, with optional extra `-addext` arguments. */
export function opensslCsr(dir: string, keyPem: string, addext: readonly string[] = []): string {
  writeFileSync(join(dir, 'csr-key.pem'), keyPem);
  const args = ['req', '-new', '-key', join(dir, 'csr-key.pem'), '-subj', '/O=test'];
  for (const a of addext) args.push('-addext', a);
  return execFileSync('openssl', args, { encoding: 'utf8' });
}
