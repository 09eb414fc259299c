// Certificates as files (Istio's secret-volume path): for each workload's service account,
// DIR/<namespace>/<service-account>/ holds key.pem, cert-chain.pem and root-cert.pem, plus
// default-sds.yaml for Envoy's file-based SDS. The secrets manager keeps one SVID per service
// account under the key `files:<ns>/<sa>` (want() once per account, as if a proxy were always
// connected), so it is issued, renewed at half life and replaced after a revocation whether or
// not any proxy is up; its CRL handling in main reissues it like any other holder.
//
// Files change together by Kubernetes' atomic-writer layout: each version is a fresh
// `..<n>` directory, `..data` is a symlink renamed over to the newest, and key.pem etc. are
// symlinks through `..data`. A reader (or Envoy, which reloads on a move into the watched
// directory) never sees a key from one version and a chain from another, and a failed write
// leaves `..data` on the last complete version.
import {
  accessSync,
  chmodSync,
  chownSync,
  constants,
  lchownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { err, ok, type Result } from '../lib/index.js';
import type { SpiffeId } from '../identity/index.js';
import type { Logger } from '../observability/index.js';
import type { SvidStore, WorkloadCertificate } from './svid-store.js';

/** The files of one service account's directory (Istio's names). */
export const CERT_FILES = { key: 'key.pem', chain: 'cert-chain.pem', root: 'root-cert.pem', sds: 'default-sds.yaml' } as const;

/** A service account whose certificate is kept as files. */
export interface FileAccount {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly spiffeId: SpiffeId;
}

/** Keeps the certificate files of a set of service accounts current. */
export interface FileSecrets {
  /** Sets the service accounts to keep (from the mesh config); accounts no longer listed keep their last files but are not renewed. */
  setAccounts(accounts: readonly FileAccount[]): void;
  /** Resolves once every kept account has its files written (tests, startup). */
  written(): Promise<void>;
  close(): void;
}

/** What the module reads: the secrets manager and the current trust bundle. */
export interface FileSecretsDeps {
  readonly dir: string;
  readonly svids: Pick<SvidStore, 'want' | 'release' | 'current' | 'onChanged'>;
  readonly trustBundlePem: () => string;
  /** Subscribes to trust bundle changes (root rotation); returns an unsubscribe. */
  readonly onTrustChange: (cb: () => void) => () => void;
  readonly log: Logger;
}

/** The secrets-manager key of a file-mounted service account. */
export const fileAccountKey = (namespace: string, serviceAccount: string) => `files:${namespace}/${serviceAccount}`;

/** Checks that the secret directory can be made and written; the error names it. */
export function checkSecretDir(dir: string): Result<void> {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK | constants.X_OK);
    // access() says yes to root everywhere but on read-only mounts: write a probe to be sure.
    const probe = join(dir, `.probe-${process.pid}`);
    writeFileSync(probe, '', { mode: 0o600 });
    rmSync(probe);
    return ok(undefined);
  } catch (e) {
    return err(`secret directory ${dir} is not writable: ${(e as Error).message}`);
  }
}

/** Envoy's file-based SDS resource for `default`: key and chain through the stable symlinks, reloaded on moves into the directory. */
export function defaultSdsFile(accountDir: string): string {
  const doc = {
    resources: [
      {
        '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
        name: 'default',
        tls_certificate: {
          certificate_chain: { filename: join(accountDir, CERT_FILES.chain) },
          private_key: { filename: join(accountDir, CERT_FILES.key) },
          // TlsCertificate.watched_directory: the pair is re-read together when an entry is moved
          // into this directory (the `..data` swap), instead of watching each file's parent.
          watched_directory: { path: accountDir },
        },
      },
    ],
  };
  return JSON.stringify(doc, null, 2) + '\n';
}

/** Who owns the files: a uid and gid, or undefined for this process. */
export type FileOwner = { readonly uid: number; readonly gid: number } | undefined;

// Envoy reads the files as its own user (uid 1337 in capture mode) and they are 0600, so, as
// Kubernetes gives a secret volume the pod's fsGroup, they belong to whoever owns --secret-dir
// (when meshpilot runs as root and that is someone else): `chown 1337 DIR` is the whole setup.
/** The owner the files get: the secret directory's, when this process is root and it differs. */
export function ownerFor(dir: string): FileOwner {
  if (process.getuid?.() !== 0) return undefined;
  const st = statSync(dir);
  return st.uid === 0 && st.gid === 0 ? undefined : { uid: st.uid, gid: st.gid };
}

/** Writes one complete version of an account's files and swaps `..data` to it; never leaves a partial version visible. */
export function writeAccountFiles(
  accountDir: string,
  cert: Pick<WorkloadCertificate, 'keyPem' | 'chainPem'>,
  rootPem: string,
  owner?: FileOwner,
): Result<void> {
  const own = (p: string) => owner && chownSync(p, owner.uid, owner.gid);
  const version = `..${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const versionDir = join(accountDir, version);
  const tmpLink = join(accountDir, `..data_tmp-${process.pid}`);
  try {
    mkdirSync(accountDir, { recursive: true, mode: 0o700 });
    chmodSync(accountDir, 0o700);
    own(dirname(accountDir));
    own(accountDir);
    mkdirSync(versionDir, { mode: 0o700 });
    own(versionDir);
    for (const [name, text] of [
      [CERT_FILES.key, cert.keyPem],
      [CERT_FILES.chain, cert.chainPem],
      [CERT_FILES.root, rootPem],
    ] as const) {
      writeFileSync(join(versionDir, name), text, { mode: 0o600 });
      own(join(versionDir, name));
    }
    rmSync(tmpLink, { force: true });
    symlinkSync(version, tmpLink);
    if (owner) lchownSync(tmpLink, owner.uid, owner.gid);
    // rename(2) replaces ..data atomically: readers see the old version or the new, whole.
    renameSync(tmpLink, join(accountDir, '..data'));
  } catch (e) {
    rmSync(versionDir, { recursive: true, force: true });
    rmSync(tmpLink, { force: true });
    return err(`writing ${accountDir}: ${(e as Error).message}`);
  }
  try {
    for (const name of [CERT_FILES.key, CERT_FILES.chain, CERT_FILES.root]) ensureLink(accountDir, name);
    const sds = join(accountDir, CERT_FILES.sds);
    const tmp = `${sds}.tmp-${process.pid}`;
    writeFileSync(tmp, defaultSdsFile(accountDir), { mode: 0o600 });
    own(tmp);
    renameSync(tmp, sds);
    for (const entry of readdirSync(accountDir))
      if (entry.startsWith('..') && entry !== version && entry !== '..data')
        rmSync(join(accountDir, entry), { recursive: true, force: true });
  } catch (e) {
    return err(`finishing ${accountDir}: ${(e as Error).message}`);
  }
  return ok(undefined);
}

/**
 * Removes what a crash between writing a version and publishing it left in `<dir>/<ns>/<sa>/`:
 * temp files and links (`*.tmp-<pid>`, `..data_tmp-<pid>`) and version directories that `..data`
 * does not point to. Returns the paths removed. Call it before this process writes there.
 */
export function removeLeftoverSecretFiles(dir: string): string[] {
  const removed: string[] = [];
  const list = (d: string): string[] => {
    try {
      return readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
        .map((e) => join(d, e.name));
    } catch {
      return [];
    }
  };
  for (const accountDir of list(dir).flatMap(list)) {
    let current: string | undefined;
    try {
      current = readlinkSync(join(accountDir, '..data'));
    } catch {
      current = undefined;
    }
    for (const entry of readdirSync(accountDir)) {
      const leftover =
        /\.tmp-[0-9]+$/.test(entry) ||
        entry.startsWith('..data_tmp-') ||
        (entry.startsWith('..') && entry !== '..data' && entry !== current);
      if (!leftover) continue;
      rmSync(join(accountDir, entry), { recursive: true, force: true });
      removed.push(join(accountDir, entry));
    }
  }
  return removed;
}

function ensureLink(dir: string, name: string): void {
  const path = join(dir, name);
  try {
    if (lstatSync(path).isSymbolicLink()) return;
  } catch {
    // absent: made below
  }
  const tmp = `${path}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  symlinkSync(join('..data', name), tmp);
  renameSync(tmp, path);
}

/** Creates the module: asks the secrets manager for each account's SVID and writes it, and the roots, on every change. */
export function createFileSecrets(deps: FileSecretsDeps): FileSecrets {
  const accounts = new Map<string, FileAccount>();
  const written = new Map<string, string>(); // key -> serial written
  let waiters: (() => void)[] = [];
  const dirOf = (a: FileAccount) => join(deps.dir, a.namespace, a.serviceAccount);
  const owner = ownerFor(deps.dir);

  function write(key: string): void {
    const a = accounts.get(key);
    const cert = deps.svids.current(key);
    if (!a || !cert) return;
    const r = writeAccountFiles(dirOf(a), cert, deps.trustBundlePem(), owner);
    if (!r.ok) {
      // The previous version stays in place; the next change (renewal, root) tries again.
      deps.log.error('certificate files not written', { account: key, cause: r.error });
      return;
    }
    written.set(key, cert.serialHex);
    deps.log.info('certificate files written', { account: key, dir: dirOf(a), serial: cert.serialHex });
    wake();
  }

  function wake(): void {
    if ([...accounts.keys()].every((k) => written.get(k) === deps.svids.current(k)?.serialHex)) for (const w of waiters.splice(0)) w();
  }

  const offSvids = deps.svids.onChanged((key) => {
    if (accounts.has(key)) write(key);
  });
  const offTrust = deps.onTrustChange(() => {
    for (const key of accounts.keys()) write(key);
  });

  return {
    setAccounts(list) {
      const next = new Map(list.map((a) => [fileAccountKey(a.namespace, a.serviceAccount), a]));
      for (const [key, a] of accounts) {
        if (next.get(key)?.spiffeId !== a.spiffeId) {
          deps.svids.release(key);
          accounts.delete(key);
          written.delete(key);
        }
      }
      for (const [key, a] of next) {
        if (accounts.has(key)) continue;
        accounts.set(key, a);
        deps.svids.want(key, a.spiffeId);
        write(key);
      }
      wake();
    },
    written: () =>
      new Promise<void>((resolve) => {
        waiters.push(resolve);
        wake();
      }),
    close() {
      offSvids();
      offTrust();
      for (const key of accounts.keys()) deps.svids.release(key);
      accounts.clear();
      for (const w of waiters.splice(0)) w();
      waiters = [];
    },
  };
}
