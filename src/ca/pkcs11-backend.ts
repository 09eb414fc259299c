// The CA backends' hooks for a key in a PKCS#11 token. A self-signed root keeps its
// certificate in the state directory and, instead of root-<n>-key.pem, a small record of
// where its key is (root-<n>-key.pkcs11.json: module, token and key label; never the PIN),
// so that a start without the token flags says what it needs rather than "file missing".
// A plug-in CA keeps its four files minus ca-key.pem: ca-cert.pem must be for the token's key.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { err, ok } from '../lib/index.js';
import type { Clock, Result } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import { isExternalKey } from './keys.js';
import type { CaSigningKey } from './keys.js';
import { loadSigningCaWithExternalKey } from './material.js';
import type { SigningCa } from './material.js';
import { describeRef, openPkcs11Key } from './pkcs11-signer.js';
import type { Pkcs11Key, Pkcs11KeyRef } from './pkcs11-signer.js';
import { rootFiles, writeFileAtomic } from './state-store.js';
import type { CaStore } from './state-store.js';
import { caError } from './types.js';
import type { CaError } from './types.js';

/** The file recording where a root's key is, in place of its key file. */
export const tokenKeyFile = (id: string): string => `${id}-key.pkcs11.json`;

interface TokenKeyRecord {
  readonly module: string;
  readonly tokenLabel: string;
  readonly keyLabel: string;
}

const FLAGS = '--ca-pkcs11-module, --ca-pkcs11-token, --ca-pkcs11-key and --ca-pkcs11-pin-file';

/** Opens the CA key in its token; the error names module, token label and key label. */
export function openTokenKey(ref: Pkcs11KeyRef, log: Logger, clock: Clock): Result<Pkcs11Key, CaError> {
  const k = openPkcs11Key(ref, { log, clock });
  if (!k.ok) return err(caError('bad-material', `CA key ${describeRef(ref)}: ${k.error}`));
  log.info('ca key in pkcs11 token', { key: k.value.description });
  return k;
}

/** Reads the token record of a root, if its key is in a token. */
export function readTokenKeyRecord(dir: string, id: string): Result<TokenKeyRecord | undefined, CaError> {
  const file = join(dir, tokenKeyFile(id));
  if (!existsSync(file)) return ok(undefined);
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<TokenKeyRecord>;
    if (typeof v.module !== 'string' || typeof v.tokenLabel !== 'string' || typeof v.keyLabel !== 'string')
      return err(caError('bad-state', `${file}: expected module, tokenLabel and keyLabel strings`, file));
    return ok({ module: v.module, tokenLabel: v.tokenLabel, keyLabel: v.keyLabel });
  } catch (e) {
    return err(caError('bad-state', `${file}: not readable JSON (${(e as Error).message})`, file));
  }
}

/**
 * Loads a self-signed root whose key is in a token: checks that the flags name the token and key
 * recorded for it, and that its certificate is for that key. Without flags, says which ones it needs.
 */
export function loadTokenRoot(
  dir: string,
  id: string,
  record: TokenKeyRecord,
  key: Pkcs11Key | undefined,
  now: number,
): Result<SigningCa, CaError> {
  const file = join(dir, tokenKeyFile(id));
  if (!key) return err(caError('bad-state', `${file}: the key of ${id} is ${describeRef(record)}: start with ${FLAGS}`, file));
  if (record.tokenLabel !== key.ref.tokenLabel || record.keyLabel !== key.ref.keyLabel)
    return err(
      caError('bad-state', `${file}: the key of ${id} is ${describeRef(record)}, but the flags name ${describeRef(key.ref)}`, file),
    );
  const certFile = join(dir, rootFiles(id).cert);
  let pem: string;
  try {
    pem = readFileSync(certFile, 'utf8');
  } catch (e) {
    return err(caError('bad-state', `${certFile}: missing (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, certFile));
  }
  return loadSigningCaWithExternalKey(pem, key, certFile, now);
}

/** Writes a new root's certificate and its token record (the key stays in the token). */
export function writeTokenRoot(dir: string, id: string, certPem: string, key: Pkcs11Key): Result<void, CaError> {
  const record: TokenKeyRecord = { module: key.ref.module, tokenLabel: key.ref.tokenLabel, keyLabel: key.ref.keyLabel };
  const r = writeFileAtomic(join(dir, tokenKeyFile(id)), JSON.stringify(record, null, 2) + '\n');
  if (!r.ok) return r;
  return writeFileAtomic(join(dir, rootFiles(id).cert), certPem);
}

/** The refusal for flags that name a token while the root's key is a file. */
export function keyIsAFile(dir: string, id: string): CaError {
  const file = join(dir, rootFiles(id).key);
  return caError(
    'bad-state',
    `${file}: this CA's root key is a file, not in a PKCS#11 token: leave out the --ca-pkcs11 flags (moving a self-signed root's key into a token is not supported; use a new state directory)`,
    file,
  );
}

/** Wraps a store so that closing the CA also closes its token session. */
export function closingKey(store: CaStore, key: CaSigningKey | undefined): CaStore {
  if (!key || !isExternalKey(key)) return store;
  return {
    ...store,
    close() {
      store.close();
      (key as Pkcs11Key).close();
    },
  };
}

/** The refusal of a root rotation while the root's key is in a token. */
export const rotationInTokenUnsupported = (): CaError =>
  caError(
    'bad-state',
    'root rotation with the root key in a PKCS#11 token is not supported yet: rotate by starting a new CA (or use a plug-in root with an intermediate key in the token)',
  );

/** Warns about a plug-in ca-key.pem left beside a token key: it is not used, and a key file is what the token is there to avoid. */
export function warnStrayPluginKey(pluginDir: string, log: Logger): void {
  const file = join(pluginDir, 'ca-key.pem');
  if (existsSync(file)) log.warn('plug-in ca-key.pem not used: the ca key is in the pkcs11 token; delete the file', { file });
}
