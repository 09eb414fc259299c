// The CA backends' hooks for a key in a PKCS#11 token. A self-signed root keeps its
// certificate in the state directory and, instead of root-<n>-key.pem, a small record of
// where its key is (root-<n>-key.pkcs11.json: module, token and key label; never the PIN),
// so that a start without the token flags says what it needs rather than "file missing".
// A plug-in CA keeps its four files minus ca-key.pem: ca-cert.pem must be for the token's key.
// rotate-root makes each new root's key in the same token, under a label derived from the flags'
// (`<key>-root-<n>`); the retired root's key object is kept there for the operator to destroy.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { err, ok } from '../lib/index.js';
import type { Clock, Result } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import { isExternalKey } from './keys.js';
import type { CaSigningKey } from './keys.js';
import { loadSigningCaWithExternalKey } from './material.js';
import type { SigningCa } from './material.js';
import { deletePkcs11Key, describeRef, generatePkcs11Key, openPkcs11Key, pkcs11KeyExists } from './pkcs11-signer.js';
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
 * Loads a self-signed root whose key is in a token: checks that the flags name the token recorded for
 * it and its key (or the key it was rotated from), and that its certificate is for that key. Without
 * flags, says which ones it needs.
 */
export function loadTokenRoot(
  dir: string,
  id: string,
  record: TokenKeyRecord,
  keys: TokenKeyring | undefined,
  now: number,
): Result<SigningCa, CaError> {
  const file = join(dir, tokenKeyFile(id));
  if (!keys) return err(caError('bad-state', `${file}: the key of ${id} is ${describeRef(record)}: start with ${FLAGS}`, file));
  const key = keys.forRecord(file, id, record);
  if (!key.ok) return key;
  const certFile = join(dir, rootFiles(id).cert);
  let pem: string;
  try {
    pem = readFileSync(certFile, 'utf8');
  } catch (e) {
    return err(caError('bad-state', `${certFile}: missing (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, certFile));
  }
  return loadSigningCaWithExternalKey(pem, key.value, certFile, now);
}

/** The label of the key rotate-root makes for root `id`: the flags' label without a rotation suffix, then `-<id>`. */
export const rotatedKeyLabel = (flagsLabel: string, id: string): string => `${baseLabel(flagsLabel)}-${id}`;
const baseLabel = (label: string): string => label.replace(/-root-\d+$/, '');

/** The CA's keys in one token: the one the flags name, and those rotate-root made beside it. */
export interface TokenKeyring {
  /** The key named by the flags. */
  readonly flags: Pkcs11Key;
  /** The key a root's record names, opened with the flags' PIN; refuses another token or key family. */
  forRecord(file: string, id: string, record: TokenKeyRecord): Result<Pkcs11Key, CaError>;
  /**
   * The key of a new root `id`: generated in the token (P-256, sensitive, not extractable) under the
   * derived label, or, when a failed earlier prepare left one there unrecorded, that key again.
   * Until the state names `id` (settle), discard(id) destroys a key generated by this call.
   */
  newRootKey(id: string): Result<Pkcs11Key, CaError>;
  /** The state now names these roots: their new keys are theirs for good. */
  settle(issuers: readonly string[]): void;
  /** Undoes the new key of a root the state never named; false when `id` is not such a root. */
  discard(id: string): boolean;
  close(): void;
}

export function createTokenKeyring(ref: Pkcs11KeyRef, flags: Pkcs11Key, log: Logger, clock: Clock): TokenKeyring {
  const opened = new Map<string, Pkcs11Key>([[flags.ref.keyLabel, flags]]);
  const pending = new Map<string, () => void>();
  const open = (keyLabel: string): Result<Pkcs11Key, CaError> => {
    const have = opened.get(keyLabel);
    if (have) return ok(have);
    const k = openTokenKey({ ...ref, keyLabel }, log, clock);
    if (k.ok) opened.set(keyLabel, k.value);
    return k;
  };
  return {
    flags,
    forRecord(file, id, record) {
      if (record.tokenLabel !== ref.tokenLabel || baseLabel(record.keyLabel) !== baseLabel(ref.keyLabel))
        return err(
          caError('bad-state', `${file}: the key of ${id} is ${describeRef(record)}, but the flags name ${describeRef(flags.ref)}`, file),
        );
      return open(record.keyLabel);
    },
    newRootKey(id) {
      const keyRef = { ...ref, keyLabel: rotatedKeyLabel(ref.keyLabel, id) };
      const notReady = (m: string) => err(caError('not-ready', `cannot make the new root's key ${describeRef(keyRef)}: ${m}`));
      const exists = pkcs11KeyExists(keyRef);
      if (!exists.ok) return notReady(exists.error);
      if (exists.value) log.warn('reusing the new root key an earlier prepare left in the token', { key: describeRef(keyRef) });
      else {
        const g = generatePkcs11Key(keyRef);
        if (!g.ok) return notReady(g.error);
      }
      const undo = () => {
        opened.get(keyRef.keyLabel)?.close();
        opened.delete(keyRef.keyLabel);
        if (exists.value) return;
        const d = deletePkcs11Key(keyRef);
        if (!d.ok)
          log.warn('could not remove the unrecorded new root key; the next prepare reuses it', {
            key: describeRef(keyRef),
            cause: d.error,
          });
      };
      const k = open(keyRef.keyLabel);
      if (!k.ok) {
        undo();
        return notReady(k.error.message);
      }
      pending.set(id, undo);
      return k;
    },
    settle(issuers) {
      for (const id of issuers) pending.delete(id);
    },
    discard(id) {
      const undo = pending.get(id);
      pending.delete(id);
      undo?.();
      return undo !== undefined;
    },
    close() {
      for (const k of opened.values()) k.close();
      opened.clear();
    },
  };
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

/**
 * Wraps a store so that closing the CA also closes its token sessions, and so that retiring a root
 * whose key is in the token says that the key object stays there: destroying key material in an HSM
 * is the operator's act (their key-destruction procedure, a backup to update), not a side effect.
 */
export function tokenStore(store: CaStore, dir: string | undefined, keys: TokenKeyring | undefined, log: Logger): CaStore {
  if (!keys) return store;
  return {
    ...store,
    writeState(s) {
      const w = store.writeState(s);
      if (w.ok) keys.settle(s.issuers);
      return w;
    },
    removeRootMaterial(id) {
      const record = dir ? readTokenKeyRecord(dir, id) : ok(undefined);
      store.removeRootMaterial(id);
      if (keys.discard(id)) return;
      if (record.ok && record.value)
        log.warn('retired root key kept in the token: destroy it there when your key-destruction procedure allows', {
          root: id,
          key: describeRef(record.value),
        });
    },
    close() {
      store.close();
      keys.close();
    },
  };
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

/** Warns about a plug-in ca-key.pem left beside a token key: it is not used, and a key file is what the token is there to avoid. */
export function warnStrayPluginKey(pluginDir: string, log: Logger): void {
  const file = join(pluginDir, 'ca-key.pem');
  if (existsSync(file)) log.warn('plug-in ca-key.pem not used: the ca key is in the pkcs11 token; delete the file', { file });
}
