// The CA backends: ephemeral (memory only), self-signed (root kept in a state directory)
// and plug-in (Istio's ca-cert.pem / ca-key.pem / root-cert.pem / cert-chain.pem).
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { err, fsErrorText, ok, systemClock } from '../lib/index.js';
import type { Clock, Result } from '../lib/index.js';
import { silentLogger } from '../observability/index.js';
import type { Logger } from '../observability/index.js';
import { DEFAULT_TRUST_DOMAIN } from '../identity/index.js';
import type { TrustDomain } from '../identity/index.js';
import { createAuthority } from './authority.js';
import type { IssuancePolicy, Issuer } from './authority.js';
import { caKeyPem, generateKeyPair, KeyUnavailableError } from './keys.js';
import type { KeyPair } from './keys.js';
import { createRootCa, loadPluginCa, loadSigningCa } from './material.js';
import type { SigningCa } from './material.js';
import {
  closingKey,
  createTokenKeyring,
  keyIsAFile,
  loadTokenRoot,
  openTokenKey,
  readTokenKeyRecord,
  tokenStore,
  warnStrayPluginKey,
  writeTokenRoot,
} from './pkcs11-backend.js';
import type { TokenKeyring } from './pkcs11-backend.js';
import type { Pkcs11Key, Pkcs11KeyRef } from './pkcs11-signer.js';
import { createDirStore, createMemoryStore, ISSUED_FILE, readIssued, readState, rootFiles, writeFileAtomic } from './state-store.js';
import type { CaStore, IssuanceRecord, PersistedState, RevokedRecord } from './state-store.js';
import type { CaRecord, CaStateStore, Versioned } from './shared-store.js';
import { caError } from './types.js';
import type { CaError, CertificateAuthority } from './types.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Options shared by every backend; every field has a default. */
export interface CaOptions {
  /** The mesh trust domain (default cluster.local); with a state directory it must match the one recorded. */
  readonly trustDomain?: TrustDomain;
  readonly clock?: Clock;
  readonly log?: Logger;
  /** SVID lifetime when the request names none (default 24 h). */
  readonly defaultTtlMs?: number;
  /** Longest SVID lifetime a request may ask for (default 90 days, Istio's maximum); beyond it is `ttl-too-long`. */
  readonly maxTtlMs?: number;
  /** How far notBefore is back-dated for clock skew (default 5 min; never before the CA's notBefore). */
  readonly backdateMs?: number;
  /** How long a CRL is valid (default 24 h); it is re-signed at half that. */
  readonly crlValidityMs?: number;
  /** Lifetime of a generated root (default 10 years). */
  readonly rootValidityMs?: number;
  /** Key source for generated roots (default: a fresh ECDSA P-256 key). */
  readonly generateKey?: () => KeyPair;
  /**
   * The CA key is in this PKCS#11 token, not in a file: a self-signed CA's root key, or a plug-in
   * CA's intermediate key (ca-key.pem is then not read). The key must exist (ca init makes it).
   */
  readonly pkcs11?: Pkcs11KeyRef;
}

const policyOf = (o: CaOptions): IssuancePolicy => ({
  defaultTtlMs: o.defaultTtlMs ?? DAY,
  maxTtlMs: o.maxTtlMs ?? 90 * DAY,
  backdateMs: o.backdateMs ?? 5 * 60_000,
  crlValidityMs: o.crlValidityMs ?? DAY,
});

const rootLabel = (id: string) => `meshpilot ${id.replace('-', ' ')}`;

function makeRoot(o: CaOptions, trustDomain: TrustDomain, id: string): Issuer {
  const ca = createRootCa({
    trustDomain,
    label: rootLabel(id),
    keys: (o.generateKey ?? (() => generateKeyPair('ec-p256')))(),
    now: (o.clock ?? systemClock).now(),
    validityMs: o.rootValidityMs ?? 3650 * DAY,
  });
  return { id, ca, intermediates: [], roots: [ca] };
}

/** Creates a CA that keeps everything in memory: a new root every start (tests, demos, single-run tools). */
export function createEphemeralCa(o: CaOptions = {}): CertificateAuthority {
  const trustDomain = o.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const root = makeRoot(o, trustDomain, 'root-1');
  return createAuthority({
    trustDomain,
    mode: 'ephemeral',
    clock: o.clock ?? systemClock,
    log: o.log ?? silentLogger,
    store: createMemoryStore(),
    issuers: [root],
    signing: root.id,
    issued: [],
    revoked: [],
    crlNumber: 0,
    policy: policyOf(o),
    newRoot: (id) => ok(makeRoot(o, trustDomain, id)),
  });
}

function ensureStateDir(dir: string, log: Logger): Result<void, CaError> {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = statSync(dir);
    if (!st.isDirectory()) return err(caError('bad-state', `${dir}: state path is not a directory`, dir));
    if ((st.mode & 0o077) !== 0) {
      chmodSync(dir, 0o700);
      log.warn('state directory permissions tightened', { dir, was: (st.mode & 0o777).toString(8) });
    }
    return ok(undefined);
  } catch (e) {
    return err(caError('io', `${dir}: cannot create state directory: ${fsErrorText(e)}`, dir));
  }
}

function readFile(path: string): Result<string, CaError> {
  try {
    return ok(readFileSync(path, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return err(caError('bad-state', `${path}: ${code === 'ENOENT' ? 'missing' : 'cannot read'} (${code ?? (e as Error).message})`, path));
  }
}

function loadRoot(dir: string, id: string, now: number, log: Logger): Result<Issuer, CaError> {
  const f = rootFiles(id);
  const certFile = join(dir, f.cert);
  const keyFile = join(dir, f.key);
  const cert = readFile(certFile);
  if (!cert.ok) return cert;
  const key = readFile(keyFile);
  if (!key.ok) return key;
  try {
    if ((statSync(keyFile).mode & 0o077) !== 0) log.warn('ca key file readable by others', { file: keyFile });
  } catch {
    // Read just succeeded; a race here is not worth failing the load for.
  }
  const ca = loadSigningCa(cert.value, key.value, { certFile, keyFile }, now);
  if (!ca.ok) return ca;
  if (!ca.value.x509.checkIssued(ca.value.x509) || !ca.value.x509.verify(ca.value.x509.publicKey)) {
    return err(caError('bad-material', `${certFile}: '${ca.value.summary.subject}' is not a self-signed root`, certFile));
  }
  return ok({ id, ca: ca.value, intermediates: [], roots: [ca.value] });
}

interface Loaded {
  readonly state: PersistedState | undefined;
  readonly issued: readonly IssuanceRecord[];
}

function loadState(dir: string, log: Logger): Result<Loaded, CaError> {
  const state = readState(dir);
  if (!state.ok) return state;
  const issued = readIssued(dir);
  if (!issued.ok) return issued;
  if (issued.value.tornTail) {
    // Drop the fragment now, or the next append would glue a record onto it.
    log.warn('issuance journal had a torn last line; dropped', { dir });
    const w = writeFileAtomic(join(dir, ISSUED_FILE), issued.value.records.map((r) => JSON.stringify(r) + '\n').join(''));
    if (!w.ok) return w;
  }
  return ok({ state: state.value, issued: issued.value.records });
}

function checkTrustDomain(o: CaOptions, s: PersistedState, dir: string): Result<TrustDomain, CaError> {
  if (o.trustDomain !== undefined && o.trustDomain !== s.trustDomain) {
    return err(
      caError(
        'bad-state',
        `${join(dir, 'ca.json')}: state is for trust domain ${s.trustDomain}, not ${o.trustDomain}`,
        join(dir, 'ca.json'),
      ),
    );
  }
  return ok(s.trustDomain as TrustDomain);
}

function openSelfSigned(o: CaOptions, dir: string, loaded: Loaded, store: CaStore, log: Logger): Result<CertificateAuthority, CaError> {
  const clock = o.clock ?? systemClock;
  const key = o.pkcs11 ? openTokenKey(o.pkcs11, log, clock) : undefined;
  if (key && !key.ok) return key;
  const keys = o.pkcs11 && key ? createTokenKeyring(o.pkcs11, key.value, log, clock) : undefined;
  const r = openSelfSignedWith(o, dir, loaded, tokenStore(store, dir, keys, log), log, keys);
  if (!r.ok) keys?.close();
  return r;
}

function openSelfSignedWith(
  o: CaOptions,
  dir: string,
  loaded: Loaded,
  store: CaStore,
  log: Logger,
  keys: TokenKeyring | undefined,
): Result<CertificateAuthority, CaError> {
  const clock = o.clock ?? systemClock;
  const tokenKey = keys?.flags;
  let state = loaded.state;
  let trustDomain = o.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const issuers: Issuer[] = [];
  if (!state && tokenKey) {
    // First start with the key in a token: the root certificate is signed there; only the certificate is written.
    const ca = createRootCa({
      trustDomain,
      label: rootLabel('root-1'),
      keys: { privateKey: tokenKey, publicKey: tokenKey.publicKey },
      now: clock.now(),
      validityMs: o.rootValidityMs ?? 3650 * DAY,
    });
    const w = writeTokenRoot(dir, 'root-1', ca.pem, tokenKey);
    if (!w.ok) return w;
    state = { format: 1, trustDomain, mode: 'self-signed', issuers: ['root-1'], signing: 'root-1', crlNumber: 0, revoked: [] };
    const s = store.writeState(state);
    if (!s.ok) return s;
    log.info('root created', { dir, subject: ca.summary.subject, fingerprint: ca.summary.fingerprint256, key: tokenKey.description });
    issuers.push({ id: 'root-1', ca, intermediates: [], roots: [ca] });
  } else if (!state) {
    // First start: the root files are written before ca.json names them, so a crash leaves no half state.
    const keys = (o.generateKey ?? (() => generateKeyPair('ec-p256')))();
    const root = makeRoot({ ...o, generateKey: () => keys }, trustDomain, 'root-1');
    const w = store.writeRootMaterial(root.id, root.ca.pem, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    if (!w.ok) return w;
    state = { format: 1, trustDomain, mode: 'self-signed', issuers: [root.id], signing: root.id, crlNumber: 0, revoked: [] };
    const s = store.writeState(state);
    if (!s.ok) return s;
    log.info('root created', { dir, subject: root.ca.summary.subject, fingerprint: root.ca.summary.fingerprint256 });
    issuers.push(root);
  } else {
    const td = checkTrustDomain(o, state, dir);
    if (!td.ok) return td;
    trustDomain = td.value;
    for (const id of state.issuers) {
      const record = readTokenKeyRecord(dir, id);
      if (!record.ok) return record;
      if (!record.value && tokenKey) return err(keyIsAFile(dir, id));
      if (record.value) {
        const ca = loadTokenRoot(dir, id, record.value, keys, clock.now());
        if (!ca.ok) return ca;
        issuers.push({ id, ca: ca.value, intermediates: [], roots: [ca.value] });
        continue;
      }
      const r = loadRoot(dir, id, clock.now(), log);
      if (!r.ok) return r;
      issuers.push(r.value);
    }
  }
  return ok(
    createAuthority({
      trustDomain,
      mode: 'self-signed',
      clock,
      log,
      store,
      persisted: { mode: 'self-signed' },
      issuers,
      signing: state.signing,
      issued: loaded.issued,
      revoked: state.revoked as RevokedRecord[],
      crlNumber: state.crlNumber,
      policy: policyOf(o),
      newRoot(id) {
        if (keys) return newTokenRoot(o, dir, keys, trustDomain, id, clock);
        const pair = (o.generateKey ?? (() => generateKeyPair('ec-p256')))();
        const root = makeRoot({ ...o, generateKey: () => pair }, trustDomain, id);
        const w = store.writeRootMaterial(id, root.ca.pem, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
        return w.ok ? ok(root) : w;
      },
    }),
  );
}

/**
 * A new self-signed root whose key is made in the token. A token that fails refuses with not-ready and
 * writes nothing; the key generated for it is destroyed (or, if the token is gone too, reused by the next prepare).
 */
function newTokenRoot(
  o: CaOptions,
  dir: string,
  keys: TokenKeyring,
  trustDomain: TrustDomain,
  id: string,
  clock: Clock,
): Result<Issuer, CaError> {
  const key = keys.newRootKey(id);
  if (!key.ok) return key;
  let ca: SigningCa;
  try {
    ca = createRootCa({
      trustDomain,
      label: rootLabel(id),
      keys: { privateKey: key.value, publicKey: key.value.publicKey },
      now: clock.now(),
      validityMs: o.rootValidityMs ?? 3650 * DAY,
    });
  } catch (e) {
    keys.discard(id);
    if (!(e instanceof KeyUnavailableError)) throw e;
    return err(caError('not-ready', `cannot sign the new root: the key ${key.value.description} is unavailable (${e.message})`));
  }
  const w = writeTokenRoot(dir, id, ca.pem, key.value);
  if (!w.ok) {
    // The record is written first, the certificate last: only the record can be left behind.
    rmSync(join(dir, rootFiles(id).tokenRecord), { force: true });
    keys.discard(id);
    return err(caError('not-ready', `cannot record the new root ${id}: ${w.error.message}`, w.error.file));
  }
  return ok({ id, ca, intermediates: [], roots: [ca] });
}

function openPlugin(
  o: CaOptions,
  pluginDir: string,
  dir: string | undefined,
  loaded: Loaded,
  store: CaStore,
  log: Logger,
): Result<CertificateAuthority, CaError> {
  const key = o.pkcs11 ? openTokenKey(o.pkcs11, log, o.clock ?? systemClock) : undefined;
  if (key && !key.ok) return key;
  if (key) warnStrayPluginKey(pluginDir, log);
  const r = openPluginWith(o, pluginDir, dir, loaded, closingKey(store, key?.value), log, key?.value);
  if (!r.ok) key?.value.close();
  return r;
}

function openPluginWith(
  o: CaOptions,
  pluginDir: string,
  dir: string | undefined,
  loaded: Loaded,
  store: CaStore,
  log: Logger,
  tokenKey: Pkcs11Key | undefined,
): Result<CertificateAuthority, CaError> {
  const clock = o.clock ?? systemClock;
  const m = loadPluginCa(pluginDir, clock.now(), tokenKey);
  if (!m.ok) return m;
  let trustDomain = o.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  let state = loaded.state;
  if (state && dir) {
    const td = checkTrustDomain(o, state, dir);
    if (!td.ok) return td;
    trustDomain = td.value;
  }
  if (!state || state.pluginDir !== pluginDir) {
    state = {
      format: 1,
      trustDomain,
      mode: 'plug-in',
      pluginDir,
      issuers: ['plug-in'],
      signing: 'plug-in',
      crlNumber: state?.crlNumber ?? 0,
      revoked: state?.revoked ?? [],
    };
    const s = store.writeState(state);
    if (!s.ok) return s;
  }
  if (!m.value.signing.canSignCrl)
    log.warn('plug-in ca cannot sign crls', { file: join(pluginDir, 'ca-cert.pem'), reason: 'no cRLSign key usage' });
  log.info('plug-in ca loaded', { pluginDir, subject: m.value.signing.summary.subject });
  return ok(
    createAuthority({
      trustDomain,
      mode: 'plug-in',
      clock,
      log,
      store,
      persisted: dir ? { mode: 'plug-in', pluginDir } : undefined,
      issuers: [{ id: 'plug-in', ca: m.value.signing, intermediates: m.value.intermediates, roots: m.value.roots }],
      signing: 'plug-in',
      issued: loaded.issued,
      revoked: state.revoked as RevokedRecord[],
      crlNumber: state.crlNumber,
      policy: policyOf(o),
    }),
  );
}

/** Opens or creates a self-signed CA in a state directory: the ECDSA P-256 root is made on first start and kept. */
export function createSelfSignedCa(o: CaOptions & { readonly stateDir: string }): Result<CertificateAuthority, CaError> {
  const log = o.log ?? silentLogger;
  const dir = resolve(o.stateDir);
  const d = ensureStateDir(dir, log);
  if (!d.ok) return d;
  const loaded = loadState(dir, log);
  if (!loaded.ok) return loaded;
  if (loaded.value.state?.mode === 'plug-in') {
    return err(
      caError(
        'bad-state',
        `${join(dir, 'ca.json')}: state directory belongs to a plug-in CA (${loaded.value.state.pluginDir})`,
        join(dir, 'ca.json'),
      ),
    );
  }
  return openSelfSigned(o, dir, loaded.value, createDirStore(dir), log);
}

/** Opens a CA signing as an intermediate with Istio's plug-in files; revocations are kept in stateDir when given. */
export function createPluginCa(
  o: CaOptions & { readonly pluginDir: string; readonly stateDir?: string },
): Result<CertificateAuthority, CaError> {
  const log = o.log ?? silentLogger;
  const pluginDir = resolve(o.pluginDir);
  if (o.stateDir === undefined) return openPlugin(o, pluginDir, undefined, { state: undefined, issued: [] }, createMemoryStore(), log);
  const dir = resolve(o.stateDir);
  const d = ensureStateDir(dir, log);
  if (!d.ok) return d;
  const loaded = loadState(dir, log);
  if (!loaded.ok) return loaded;
  if (loaded.value.state?.mode === 'self-signed') {
    return err(
      caError(
        'bad-state',
        `${join(dir, 'ca.json')}: state directory belongs to a self-signed CA; use another directory for a plug-in CA`,
        join(dir, 'ca.json'),
      ),
    );
  }
  return openPlugin(o, pluginDir, dir, loaded.value, createDirStore(dir), log);
}

/** Opens the CA already initialized in a state directory, whichever backend it uses; `not-ready` if there is none. */
export function openCa(o: Omit<CaOptions, 'trustDomain'> & { readonly stateDir: string }): Result<CertificateAuthority, CaError> {
  const log = o.log ?? silentLogger;
  const dir = resolve(o.stateDir);
  const loaded = loadState(dir, log);
  if (!loaded.ok) return loaded;
  const s = loaded.value.state;
  if (!s)
    return err(caError('not-ready', `${dir}: no CA state here (missing ca.json): run 'meshpilot ca init' first`, join(dir, 'ca.json')));
  if (s.mode === 'plug-in') return openPlugin(o, s.pluginDir!, dir, loaded.value, createDirStore(dir), log);
  return openSelfSigned(o, dir, loaded.value, createDirStore(dir), log);
}

/** A CA opened on a shared store, with the token signing key the store keeps. */
export interface SharedCa {
  readonly ca: CertificateAuthority;
  /** The proxy token signing key (PKCS#8 PEM), the same on every replica. */
  readonly tokenKeyPem: string;
}

/** How a replica opens the shared CA. */
export interface SharedCaOptions extends CaOptions {
  readonly store: CaStateStore;
  /** This replica's plug-in files, when the CA is a plug-in CA; every replica must hold the same. */
  readonly pluginDir?: string;
  /** True while this replica holds the singleton lease (CRL re-signing, pruning); default: always. */
  readonly isLeader?: () => boolean;
}

const newTokenKeyPem = (o: CaOptions) =>
  (o.generateKey ?? (() => generateKeyPair('ec-p256')))().privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

/** Builds an issuer from root material held in a record (its key opened by the store). */
function issuerFromRecord(id: string, r: CaRecord, where: string, now: number): Result<Issuer, CaError> {
  const m = r.roots[id];
  if (!m) return err(caError('bad-state', `${where}: roots.${id} is missing`));
  const ca = loadSigningCa(m.certPem, m.keyPem, { certFile: `${where} roots.${id}.certPem`, keyFile: `${where} roots.${id}.keyPem` }, now);
  if (!ca.ok) return ca;
  return ok({ id, ca: ca.value, intermediates: [], roots: [ca.value] });
}

/**
 * Opens the CA kept in a shared store (etcd), creating it on first start (the first replica to
 * compare-and-swap wins; the others adopt its root). A replica configured for another trust
 * domain, or other plug-in files, than the store holds is refused with a message naming both.
 */
export async function openSharedCa(o: SharedCaOptions): Promise<Result<SharedCa, CaError>> {
  const log = o.log ?? silentLogger;
  const clock = o.clock ?? systemClock;
  const { store } = o;
  const plugin = o.pluginDir !== undefined ? loadPluginCa(resolve(o.pluginDir), clock.now()) : undefined;
  if (plugin && !plugin.ok) return plugin;
  const first = await store.load();
  if (!first.ok) return first;
  let current: Versioned<CaRecord> | undefined = first.value;
  if (!current) {
    const trustDomain = o.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    const common = { format: 1 as const, trustDomain, crlNumber: 0, revoked: [], tokenKeyPem: newTokenKeyPem(o) };
    let record: CaRecord;
    if (plugin) {
      record = {
        ...common,
        mode: 'plug-in',
        pluginDir: resolve(o.pluginDir!),
        pluginFingerprint: plugin.value.signing.summary.fingerprint256,
        issuers: ['plug-in'],
        signing: 'plug-in',
        roots: {},
      };
    } else {
      const root = makeRoot(o, trustDomain, 'root-1');
      record = {
        ...common,
        mode: 'self-signed',
        issuers: ['root-1'],
        signing: 'root-1',
        roots: { 'root-1': { certPem: root.ca.pem, keyPem: caKeyPem(root.ca.key) } },
      };
    }
    const created = await store.compareAndSwap(undefined, record);
    if (!created.ok) return created;
    if (created.value.applied) {
      log.info('shared ca created', { where: store.where, mode: record.mode, trustDomain });
      current = { value: record, revision: created.value.revision };
    } else {
      // Another replica created it first: adopt that one.
      current = created.value.current;
    }
  }
  if (!current) return err(caError('bad-state', `${store.where}: the CA state vanished while opening it`));
  const held = current.value;
  if (o.trustDomain !== undefined && o.trustDomain !== held.trustDomain) {
    return err(
      caError(
        'bad-state',
        `this replica is configured for trust domain ${o.trustDomain}, but ${store.where} holds the CA of trust domain ${held.trustDomain}: use the same trust domain on every replica, or another --etcd-prefix`,
      ),
    );
  }
  if (plugin && held.mode !== 'plug-in') {
    return err(
      caError(
        'bad-state',
        `this replica has a plug-in CA (${resolve(o.pluginDir!)}, '${plugin.value.signing.summary.subject}'), but ${store.where} holds a self-signed CA: every replica must use the same CA`,
      ),
    );
  }
  if (!plugin && held.mode === 'plug-in') {
    return err(
      caError(
        'bad-state',
        `${store.where} holds a plug-in CA (fingerprint ${held.pluginFingerprint}), but this replica has no plug-in files (caPluginDir): every replica must use the same CA`,
      ),
    );
  }
  if (plugin && held.pluginFingerprint !== plugin.value.signing.summary.fingerprint256) {
    return err(
      caError(
        'bad-state',
        `this replica's plug-in CA '${plugin.value.signing.summary.subject}' (fingerprint ${plugin.value.signing.summary.fingerprint256}) is not the one ${store.where} holds (fingerprint ${held.pluginFingerprint}): every replica must use the same plug-in files`,
      ),
    );
  }
  // A store made without a token key (or by an older version) gets one, once, for every replica.
  for (let attempt = 0; current.value.tokenKeyPem === undefined; attempt++) {
    if (attempt >= 20) return err(caError('not-ready', `${store.where}: could not store a token signing key (the state kept changing)`));
    const next: CaRecord = { ...current.value, tokenKeyPem: newTokenKeyPem(o) };
    const w = await store.compareAndSwap(current.revision, next);
    if (!w.ok) return w;
    if (w.value.applied) current = { value: next, revision: w.value.revision };
    else if (w.value.current) current = w.value.current;
    else return err(caError('bad-state', `${store.where}: the CA state vanished while opening it`));
  }
  const record = current.value;
  if (record.tokenKeyPem === undefined) return err(caError('bad-state', `${store.where}: could not store a token signing key`));
  const now = clock.now();
  const issuers: Issuer[] = [];
  if (plugin) {
    issuers.push({ id: 'plug-in', ca: plugin.value.signing, intermediates: plugin.value.intermediates, roots: plugin.value.roots });
  } else {
    for (const id of record.issuers) {
      const i = issuerFromRecord(id, record, store.where, now);
      if (!i.ok) return i;
      issuers.push(i.value);
    }
  }
  const journal = await store.loadIssued();
  if (!journal.ok) return journal;
  for (const p of journal.value.skipped) log.warn('issuance record skipped', { key: p.key, cause: p.message });
  const trustDomain = record.trustDomain as TrustDomain;
  const ca = createAuthority({
    trustDomain,
    mode: record.mode,
    clock,
    log,
    store: createMemoryStore(),
    issuers,
    signing: record.signing,
    issued: journal.value.records,
    revoked: record.revoked as RevokedRecord[],
    crlNumber: record.crlNumber,
    policy: policyOf(o),
    shared: {
      store,
      loaded: current,
      issuerOf: (id, r) => issuerFromRecord(id, r, store.where, clock.now()),
      ...(plugin ? {} : { makeRoot: (id: string) => makeRoot(o, trustDomain, id) }),
      isLeader: o.isLeader ?? (() => true),
    },
  });
  log.info('shared ca opened', { where: store.where, mode: record.mode, trustDomain, signing: record.signing });
  return ok({ ca, tokenKeyPem: record.tokenKeyPem });
}
