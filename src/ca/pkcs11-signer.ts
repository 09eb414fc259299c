// A CA key held in a PKCS#11 token (an HSM, or SoftHSM2 in tests), through the pkcs11js binding.
//
// The key is generated in the token (or imported once) with CKA_SENSITIVE true and
// CKA_EXTRACTABLE false, so it never leaves it: we keep a session and the key's handle and
// sign with C_Sign (CKM_ECDSA over a SHA-256 digest we compute). PKCS#11 returns ECDSA
// signatures as r||s (PKCS#11 v2.40 section 2.3.1); X.509 wants DER Ecdsa-Sig-Value
// (RFC 5480 section 2.2.3), so we convert.
//
// A token can fail while we run (HSM restarted, session lost, token removed): a failed
// signature marks the key unavailable and the caller gets a KeyUnavailableError (issuance
// answers UNAVAILABLE); we reconnect (C_Finalize, C_Initialize, new session, login, find the
// key again, same public key or nothing) at most once per retry interval, so a burst of
// requests never hammers the token. A wrong or locked PIN mid-run is never retried: each
// try would count towards locking the token.
import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import pkcs11js from 'pkcs11js';
import { err, ok, systemClock } from '../lib/index.js';
import type { Clock, Result } from '../lib/index.js';
import { silentLogger } from '../observability/index.js';
import type { Logger } from '../observability/index.js';
import { KeyUnavailableError } from './keys.js';
import type { ExternalSigningKey, SignatureAlgorithm } from './keys.js';

/** Where a CA key lives in a token: the module (shared library), the token label, the key label and the user PIN. */
export interface Pkcs11KeyRef {
  readonly module: string;
  readonly tokenLabel: string;
  readonly keyLabel: string;
  readonly pin: string;
}

/** A CA key in a token: it signs, reconnects after a token failure, and closes its session. */
export interface Pkcs11Key extends ExternalSigningKey {
  /** Where the key is (the PIN left out). */
  readonly ref: Omit<Pkcs11KeyRef, 'pin'>;
  /** Whether the last attempt to reach the token succeeded. */
  available(): boolean;
  /** Closes the session (and the module when no other key uses it). */
  close(): void;
}

// DER of the namedCurve OID prime256v1 (RFC 5480 section 2.1.1.1): CKA_EC_PARAMS of a P-256 key.
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

/** How a reference is named in messages: module, token label, key label. */
export const describeRef = (r: Pick<Pkcs11KeyRef, 'module' | 'tokenLabel' | 'keyLabel'>): string =>
  `'${r.keyLabel}' in token '${r.tokenLabel}' (PKCS#11 module ${r.module})`;

type Lib = InstanceType<typeof pkcs11js.PKCS11>;

/** One loaded module, shared by every key of this process that uses it (C_Initialize is per process). */
interface LoadedModule {
  readonly lib: Lib;
  refs: number;
  /** Bumped by every re-initialization: sessions of an older generation are gone. */
  generation: number;
  initialized: boolean;
}

const modules = new Map<string, LoadedModule>();

const ckr = (e: unknown): string => (e instanceof Error ? e.message.split('\n')[0]! : String(e));
const isCkr = (e: unknown, name: string): boolean => e instanceof Error && e.message.startsWith(name);

function initialize(m: LoadedModule): void {
  try {
    // OS locking: the binding's async calls run on libuv worker threads; with no locking
    // arguments a module may assume it is never called from two threads (PKCS#11 v2.40 5.4).
    m.lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (e) {
    // Another user of the library in this process initialized it already: that is fine.
    if (!isCkr(e, 'CKR_CRYPTOKI_ALREADY_INITIALIZED')) throw e;
  }
  m.initialized = true;
}

function acquireModule(path: string): Result<LoadedModule, string> {
  let m = modules.get(path);
  if (!m) {
    const lib = new pkcs11js.PKCS11();
    try {
      lib.load(path);
    } catch (e) {
      return err(`cannot load PKCS#11 module ${path}: ${ckr(e)}`);
    }
    m = { lib, refs: 0, generation: 0, initialized: false };
    modules.set(path, m);
  }
  if (!m.initialized) {
    try {
      initialize(m);
    } catch (e) {
      return err(`PKCS#11 module ${path}: C_Initialize failed (${ckr(e)})`);
    }
  }
  m.refs++;
  return ok(m);
}

function releaseModule(path: string, m: LoadedModule): void {
  m.refs--;
  if (m.refs > 0) return;
  modules.delete(path);
  try {
    if (m.initialized) m.lib.C_Finalize();
  } catch {
    // Finalizing a library whose token vanished may fail; there is nothing left to release.
  }
  try {
    m.lib.close();
  } catch {
    // As above.
  }
}

/** Finalizes and initializes the module again, so that it looks at its tokens afresh (SoftHSM2 reads them at C_Initialize). */
function reinitialize(m: LoadedModule): void {
  m.generation++;
  try {
    if (m.initialized) m.lib.C_Finalize();
  } catch {
    // The library may already consider itself finalized.
  }
  m.initialized = false;
  initialize(m);
}

/** Finds the slot holding the token with this label; the error lists the labels present. */
function findSlot(lib: Lib, ref: Pick<Pkcs11KeyRef, 'module' | 'tokenLabel'>): Result<Buffer, string> {
  const labels: string[] = [];
  for (const slot of lib.C_GetSlotList(true)) {
    const info = lib.C_GetTokenInfo(slot);
    const label = info.label.trimEnd();
    if (label === ref.tokenLabel) {
      if ((info.flags & pkcs11js.CKF_USER_PIN_LOCKED) !== 0)
        return err(`token '${ref.tokenLabel}' (PKCS#11 module ${ref.module}): the user PIN is locked; unlock it with the SO PIN`);
      if ((info.flags & pkcs11js.CKF_USER_PIN_INITIALIZED) === 0)
        return err(`token '${ref.tokenLabel}' (PKCS#11 module ${ref.module}): no user PIN is set (initialize the token first)`);
      return ok(slot);
    }
    if (label !== '') labels.push(`'${label}'`);
  }
  return err(
    `no token labelled '${ref.tokenLabel}' in PKCS#11 module ${ref.module} (tokens present: ${labels.length > 0 ? labels.join(', ') : 'none'})`,
  );
}

/** Opens a session on the token and logs in as the user. */
function openSession(lib: Lib, ref: Pkcs11KeyRef, slot: Buffer, rw: boolean): Result<Buffer, string> {
  const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | (rw ? pkcs11js.CKF_RW_SESSION : 0));
  try {
    lib.C_Login(session, pkcs11js.CKU_USER, ref.pin);
  } catch (e) {
    // Login state is per application and token (PKCS#11 v2.40 section 5.6): another session of ours did it.
    if (!isCkr(e, 'CKR_USER_ALREADY_LOGGED_IN')) {
      lib.C_CloseSession(session);
      const where = `token '${ref.tokenLabel}' (PKCS#11 module ${ref.module})`;
      if (isCkr(e, 'CKR_PIN_INCORRECT')) return err(`${where}: login failed: wrong PIN`);
      if (isCkr(e, 'CKR_PIN_LOCKED')) return err(`${where}: login failed: the user PIN is locked`);
      return err(`${where}: login failed (${ckr(e)})`);
    }
  }
  return ok(session);
}

function findObjects(lib: Lib, session: Buffer, cls: number, label: string): Buffer[] {
  lib.C_FindObjectsInit(session, [
    { type: pkcs11js.CKA_CLASS, value: cls },
    { type: pkcs11js.CKA_LABEL, value: label },
  ]);
  try {
    return lib.C_FindObjects(session, 4);
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

/** The EC point from CKA_EC_POINT: a DER OCTET STRING around 04||x||y (some modules give the bare point). */
function ecPoint(v: Buffer): Buffer | undefined {
  if (v.length === 65 && v[0] === 0x04) return v;
  if (v.length === 67 && v[0] === 0x04 && v[1] === 65 && v[2] === 0x04) return v.subarray(2);
  return undefined;
}

const p256PublicKey = (point: Buffer): KeyObject =>
  createPublicKey({ key: Buffer.concat([P256_SPKI_PREFIX, point]), format: 'der', type: 'spki' });

interface Connected {
  readonly session: Buffer;
  readonly key: Buffer;
  readonly publicKey: KeyObject;
  readonly spki: Buffer;
}

/** Finds the key pair by label and checks it: ECDSA P-256, can sign, cannot leave the token. */
function findKey(lib: Lib, ref: Pkcs11KeyRef, session: Buffer): Result<Omit<Connected, 'session'>, string> {
  const where = describeRef(ref);
  const priv = findObjects(lib, session, pkcs11js.CKO_PRIVATE_KEY, ref.keyLabel);
  if (priv.length === 0) return err(`no private key ${where}: create it with 'meshpilot ca init --ca-pkcs11-...'`);
  if (priv.length > 1) return err(`${priv.length} private keys are labelled ${where}: key labels must be unique`);
  const attrs = lib.C_GetAttributeValue(session, priv[0]!, [
    { type: pkcs11js.CKA_KEY_TYPE },
    { type: pkcs11js.CKA_SIGN },
    { type: pkcs11js.CKA_SENSITIVE },
    { type: pkcs11js.CKA_EXTRACTABLE },
    { type: pkcs11js.CKA_EC_PARAMS },
  ]);
  const [keyType, canSign, sensitive, extractable, params] = attrs.map((a) => a.value as Buffer);
  if (keyType!.readUIntLE(0, Math.min(keyType!.length, 6)) !== pkcs11js.CKK_EC || !params!.equals(P256_PARAMS))
    return err(`key ${where} is not an ECDSA P-256 key (the only kind meshpilot signs with in a token)`);
  if (canSign![0] !== 1) return err(`key ${where} may not sign (CKA_SIGN is false)`);
  // The point of an HSM: a key that could be exported is no better than a key file.
  if (sensitive![0] !== 1 || extractable![0] !== 0)
    return err(`key ${where} can leave the token (CKA_SENSITIVE false or CKA_EXTRACTABLE true): use a non-extractable key`);
  const pub = findObjects(lib, session, pkcs11js.CKO_PUBLIC_KEY, ref.keyLabel);
  if (pub.length !== 1) return err(`key ${where} has ${pub.length === 0 ? 'no' : 'more than one'} public key object with its label`);
  const point = ecPoint(lib.C_GetAttributeValue(session, pub[0]!, [{ type: pkcs11js.CKA_EC_POINT }])[0]!.value as Buffer);
  if (!point) return err(`key ${where}: its public key object has no readable P-256 point`);
  return ok({ key: priv[0]!, publicKey: p256PublicKey(point), spki: Buffer.concat([P256_SPKI_PREFIX, point]) });
}

/** Encodes PKCS#11's r||s ECDSA signature as DER Ecdsa-Sig-Value: SEQUENCE { INTEGER r, INTEGER s }. */
export function ecdsaRawToDer(raw: Uint8Array): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0) throw new Error(`ecdsa signature of odd length ${raw.length}`);
  const half = raw.length / 2;
  const int = (b: Uint8Array): Buffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = b.subarray(i);
    const pad = v[0]! & 0x80 ? 1 : 0;
    const out = Buffer.alloc(2 + pad + v.length);
    out[0] = 0x02;
    out[1] = pad + v.length;
    out.set(v, 2 + pad);
    return out;
  };
  const r = int(raw.subarray(0, half));
  const s = int(raw.subarray(half));
  const len = r.length + s.length;
  // At most 2 * (2 + 1 + 66) bytes for P-521: the length fits in one byte, or two with 0x81.
  const head = len < 0x80 ? Buffer.from([0x30, len]) : Buffer.from([0x30, 0x81, len]);
  return Buffer.concat([head, r, s]);
}

/** Reads a PIN file (trailing newline dropped); the error names the file. */
export function readPinFile(path: string, log: Logger = silentLogger): Result<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
    if ((statSync(path).mode & 0o077) !== 0) log.warn('pkcs11 pin file readable by others', { file: path });
  } catch (e) {
    return err(`${path}: cannot read the PIN file (${(e as NodeJS.ErrnoException).code ?? ckr(e)})`);
  }
  const pin = text.replace(/\r?\n$/, '');
  if (pin === '') return err(`${path}: the PIN file is empty`);
  if (pin.includes('\n')) return err(`${path}: the PIN file must hold the PIN on one line`);
  return ok(pin);
}

/** Runs f with a logged-in read-write session on the token; the session is closed afterwards. */
function withSession<T>(ref: Pkcs11KeyRef, f: (lib: Lib, session: Buffer) => Result<T, string>): Result<T, string> {
  const m = acquireModule(ref.module);
  if (!m.ok) return m;
  const attempt = (): Result<T, string> => {
    const slot = findSlot(m.value.lib, ref);
    if (!slot.ok) return slot;
    const session = openSession(m.value.lib, ref, slot.value, true);
    if (!session.ok) return session;
    try {
      return f(m.value.lib, session.value);
    } finally {
      m.value.lib.C_CloseSession(session.value);
    }
  };
  try {
    try {
      return attempt();
    } catch (e) {
      // Loaded before the token went away and came back (an open CA key keeps the module loaded):
      // the module's view is stale. Look afresh once; the CA key's own session reconnects on its next use.
      if (m.value.refs === 1) throw e;
      reinitialize(m.value);
      return attempt();
    }
  } catch (e) {
    return err(`${describeRef(ref)}: ${ckr(e)}`);
  } finally {
    releaseModule(ref.module, m.value);
  }
}

function refuseExisting(lib: Lib, session: Buffer, ref: Pkcs11KeyRef): Result<void, string> {
  const existing =
    findObjects(lib, session, pkcs11js.CKO_PRIVATE_KEY, ref.keyLabel).length +
    findObjects(lib, session, pkcs11js.CKO_PUBLIC_KEY, ref.keyLabel).length;
  return existing > 0 ? err(`a key ${describeRef(ref)} exists already: choose another label`) : ok(undefined);
}

const privateTemplate = (ref: Pkcs11KeyRef, id: Buffer) => [
  { type: pkcs11js.CKA_TOKEN, value: true },
  { type: pkcs11js.CKA_LABEL, value: ref.keyLabel },
  { type: pkcs11js.CKA_ID, value: id },
  { type: pkcs11js.CKA_PRIVATE, value: true },
  { type: pkcs11js.CKA_SIGN, value: true },
  { type: pkcs11js.CKA_DERIVE, value: false },
  { type: pkcs11js.CKA_SENSITIVE, value: true },
  { type: pkcs11js.CKA_EXTRACTABLE, value: false },
];

const publicTemplate = (ref: Pkcs11KeyRef, id: Buffer) => [
  { type: pkcs11js.CKA_TOKEN, value: true },
  { type: pkcs11js.CKA_LABEL, value: ref.keyLabel },
  { type: pkcs11js.CKA_ID, value: id },
  { type: pkcs11js.CKA_PRIVATE, value: false },
  { type: pkcs11js.CKA_VERIFY, value: true },
  { type: pkcs11js.CKA_EC_PARAMS, value: P256_PARAMS },
];

/** Whether the token holds a private key with this label (`ca init` makes one only when it does not). */
export function pkcs11KeyExists(ref: Pkcs11KeyRef): Result<boolean, string> {
  return withSession(ref, (lib, session) => ok(findObjects(lib, session, pkcs11js.CKO_PRIVATE_KEY, ref.keyLabel).length > 0));
}

/** Generates an ECDSA P-256 key pair in the token (sensitive, not extractable); refuses a label in use. Returns the public key. */
export function generatePkcs11Key(ref: Pkcs11KeyRef): Result<KeyObject, string> {
  return withSession(ref, (lib, session) => {
    const free = refuseExisting(lib, session, ref);
    if (!free.ok) return free;
    const id = randomBytes(16);
    const pair = lib.C_GenerateKeyPair(
      session,
      { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
      publicTemplate(ref, id),
      privateTemplate(ref, id),
    );
    const point = ecPoint(lib.C_GetAttributeValue(session, pair.publicKey, [{ type: pkcs11js.CKA_EC_POINT }])[0]!.value as Buffer);
    if (!point) return err(`${describeRef(ref)}: the generated key has no readable P-256 point`);
    return ok(p256PublicKey(point));
  });
}

/**
 * Destroys the key pair under this label in the token (private and public objects). Used only to
 * undo a key this process has just generated and could not record; retired keys are left to the operator.
 */
export function deletePkcs11Key(ref: Pkcs11KeyRef): Result<void, string> {
  return withSession(ref, (lib, session) => {
    for (const cls of [pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY])
      for (const o of findObjects(lib, session, cls, ref.keyLabel)) lib.C_DestroyObject(session, o);
    return ok(undefined);
  });
}

/**
 * Imports an ECDSA P-256 private key into the token once (sensitive, not extractable from then on);
 * refuses a label in use. Returns the public key. The caller should then delete its key file.
 */
export function importPkcs11Key(ref: Pkcs11KeyRef, privateKey: KeyObject): Result<KeyObject, string> {
  const jwk = privateKey.export({ format: 'jwk' });
  if (privateKey.type !== 'private' || jwk.crv !== 'P-256' || !jwk.d || !jwk.x || !jwk.y)
    return err('only ECDSA P-256 private keys can be imported into a token');
  const d = Buffer.from(jwk.d, 'base64url');
  const point = Buffer.concat([Buffer.from([0x04]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
  return withSession(ref, (lib, session) => {
    const free = refuseExisting(lib, session, ref);
    if (!free.ok) return free;
    const id = randomBytes(16);
    const ec = [
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC },
      { type: pkcs11js.CKA_EC_PARAMS, value: P256_PARAMS },
    ];
    lib.C_CreateObject(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
      ...ec,
      ...publicTemplate(ref, id).filter((a) => a.type !== pkcs11js.CKA_EC_PARAMS),
      // CKA_EC_POINT is the DER OCTET STRING of the uncompressed point (PKCS#11 v2.40 section 2.3.3).
      { type: pkcs11js.CKA_EC_POINT, value: Buffer.concat([Buffer.from([0x04, point.length]), point]) },
    ]);
    lib.C_CreateObject(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      ...ec,
      ...privateTemplate(ref, id),
      { type: pkcs11js.CKA_VALUE, value: d },
    ]);
    return ok(p256PublicKey(point));
  });
}

/**
 * Opens a CA key in a token: loads the module, finds the token by label, logs in, finds the key
 * by label and checks it. The error names the module, the token label and the key label.
 */
export function openPkcs11Key(
  ref: Pkcs11KeyRef,
  deps: { readonly log?: Logger; readonly clock?: Clock; readonly retryMs?: number } = {},
): Result<Pkcs11Key, string> {
  const log = deps.log ?? silentLogger;
  const clock = deps.clock ?? systemClock;
  const retryMs = deps.retryMs ?? 1_000;
  const description = describeRef(ref);
  const acquired = acquireModule(ref.module);
  if (!acquired.ok) return acquired;
  const m = acquired.value;

  const connect = (): Result<Connected, string> => {
    try {
      const slot = findSlot(m.lib, ref);
      if (!slot.ok) return slot;
      const session = openSession(m.lib, ref, slot.value, false);
      if (!session.ok) return session;
      const key = findKey(m.lib, ref, session.value);
      if (!key.ok) {
        m.lib.C_CloseSession(session.value);
        return key;
      }
      return ok({ session: session.value, ...key.value });
    } catch (e) {
      return err(`${description}: ${ckr(e)}`);
    }
  };

  const first = connect();
  if (!first.ok) {
    releaseModule(ref.module, m);
    return first;
  }
  const publicKey = first.value.publicKey;
  const spki = first.value.spki;
  let conn: Connected | undefined = first.value;
  let generation = m.generation;
  let lastError = '';
  let nextTry = 0;
  // A wrong or locked PIN is not retried: every try counts towards locking the token.
  let gaveUp = false;
  let closed = false;

  const drop = () => {
    if (conn && generation === m.generation) {
      try {
        m.lib.C_CloseSession(conn.session);
      } catch {
        // The session is already gone with the token.
      }
    }
    conn = undefined;
  };

  const reconnect = (): boolean => {
    nextTry = clock.now() + retryMs;
    try {
      // SoftHSM2 (and many modules) read their tokens at C_Initialize: look again from scratch,
      // unless another key of this process has just done so.
      if (generation === m.generation || !m.initialized) reinitialize(m);
    } catch (e) {
      lastError = `${description}: C_Initialize failed (${ckr(e)})`;
      return false;
    }
    generation = m.generation;
    const c = connect();
    if (!c.ok) {
      lastError = c.error;
      if (/wrong PIN|PIN is locked/.test(c.error)) {
        gaveUp = true;
        log.error('pkcs11 login refused; not retrying (restart with the right PIN)', { key: description, cause: c.error });
      }
      return false;
    }
    // The same label with another key would sign certificates nobody trusts: refuse it.
    if (!c.value.spki.equals(spki)) {
      m.lib.C_CloseSession(c.value.session);
      lastError = `${description}: the key under this label changed (its public key is not the one the CA certificate names)`;
      return false;
    }
    conn = c.value;
    log.info('pkcs11 token available again', { key: description });
    return true;
  };

  const signRaw = (c: Connected, digest: Buffer): Buffer => {
    m.lib.C_SignInit(c.session, { mechanism: pkcs11js.CKM_ECDSA }, c.key);
    return m.lib.C_Sign(c.session, digest, Buffer.allocUnsafe(64));
  };

  return ok({
    external: true,
    ref: { module: ref.module, tokenLabel: ref.tokenLabel, keyLabel: ref.keyLabel },
    publicKey,
    description,
    available: () => conn !== undefined && generation === m.generation,
    sign(alg: SignatureAlgorithm, tbs: Buffer): Buffer {
      if (closed) throw new Error(`${description}: key used after close`);
      if (alg.hash !== 'sha256') throw new Error(`${description}: a P-256 key signs with SHA-256, not ${alg.hash}`);
      const digest = createHash('sha256').update(tbs).digest();
      // Another key of this process re-initialized the module: our session went with it.
      if (conn && generation !== m.generation) conn = undefined;
      if (conn) {
        try {
          return ecdsaRawToDer(signRaw(conn, digest));
        } catch (e) {
          lastError = `${description}: C_Sign failed (${ckr(e)})`;
          log.error('pkcs11 signing failed; key unavailable until the token is back', { key: description, cause: ckr(e) });
          drop();
          // A lost session (HSM restart) comes back at once: try one reconnection right away.
          nextTry = 0;
        }
      }
      if (gaveUp || clock.now() < nextTry || !reconnect()) throw new KeyUnavailableError(lastError);
      try {
        return ecdsaRawToDer(signRaw(conn!, digest));
      } catch (e) {
        lastError = `${description}: C_Sign failed (${ckr(e)})`;
        drop();
        throw new KeyUnavailableError(lastError);
      }
    },
    close() {
      if (closed) return;
      closed = true;
      drop();
      releaseModule(ref.module, m);
    },
  });
}
