// Persistence of the CA state: a directory (0700) of files (0600), each written atomically
// (temp file, fsync, rename, fsync the directory). ca.json is the commit point: new root
// files are written before the ca.json that names them and old ones removed after, so a
// crash at any point leaves a state that loads. Issuance records are an append-only
// journal (issued.jsonl), compacted atomically; a torn last line from a crash is ignored.
import { closeSync, fstatSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { err, fsErrorText, ok } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import { checkPersistedFields, isIssuanceRecord } from './shared-store.js';
import { caError } from './types.js';
import type { CaError } from './types.js';

/** The state file: the commit point of every change. */
export const STATE_FILE = 'ca.json';
/** The issuance journal. */
export const ISSUED_FILE = 'issued.jsonl';

/** One issued SVID, as recorded for revocation and for the root-retirement check. */
export interface IssuanceRecord {
  readonly serial: string;
  readonly issuer: string;
  readonly spiffeId: string;
  readonly notAfter: number;
}

/** One revoked SVID. */
export interface RevokedRecord extends IssuanceRecord {
  readonly revokedAt: number;
}

/** The contents of ca.json. */
export interface PersistedState {
  readonly format: 1;
  readonly trustDomain: string;
  readonly mode: 'self-signed' | 'plug-in';
  readonly pluginDir?: string;
  /** Issuing CAs whose SVIDs may be outstanding, oldest first: `root-<n>` (self-signed) or `plug-in`. */
  readonly issuers: readonly string[];
  readonly signing: string;
  readonly crlNumber: number;
  readonly revoked: readonly RevokedRecord[];
}

/** Where the CA keeps its state; the in-memory store keeps nothing. */
export interface CaStore {
  writeState(s: PersistedState): Result<void, CaError>;
  writeRootMaterial(id: string, certPem: string, keyPem: string): Result<void, CaError>;
  removeRootMaterial(id: string): void;
  appendIssued(r: IssuanceRecord): Result<void, CaError>;
  rewriteIssued(rs: readonly IssuanceRecord[]): Result<void, CaError>;
  close(): void;
}

/** A store that keeps nothing: for the ephemeral CA. */
export function createMemoryStore(): CaStore {
  return {
    writeState: () => ok(undefined),
    writeRootMaterial: () => ok(undefined),
    removeRootMaterial: () => {},
    appendIssued: () => ok(undefined),
    rewriteIssued: () => ok(undefined),
    close: () => {},
  };
}

/** The cert and key file names of a root kept in the state directory. */
export const rootFiles = (id: string) => ({ cert: `${id}-cert.pem`, key: `${id}-key.pem`, tokenRecord: `${id}-key.pkcs11.json` });

const ioError = (path: string, e: unknown): CaError => caError('io', `${path}: ${fsErrorText(e)}`, path);

/** Writes a file atomically with mode 0600: temp file, fsync, rename over the target, fsync the directory. */
export function writeFileAtomic(path: string, data: string | Uint8Array): Result<void, CaError> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    syncDir(dirname(path));
    return ok(undefined);
  } catch (e) {
    rmSync(tmp, { force: true });
    return err(ioError(path, e));
  }
}

// The temp names writeFileAtomic makes: `<file>.tmp-<pid>-<8 hex>`.
const ATOMIC_TEMP = /\.tmp-[0-9]+-[0-9a-f]{8}$/;

/**
 * Removes the temp files a crash left between write and rename (`<file>.tmp-<pid>-<hex>`) and
 * returns their names. Call it only while holding the directory's lock: a live writer's temp file
 * would be removed under it.
 */
export function removeLeftoverTempFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const removed = entries.filter((e) => ATOMIC_TEMP.test(e));
  for (const e of removed) rmSync(join(dir, e), { force: true });
  return removed;
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some file systems refuse fsync on directories; the rename is still atomic.
  }
}

/** A store in a state directory. */
export function createDirStore(dir: string): CaStore {
  let journal: number | undefined;
  const journalPath = join(dir, ISSUED_FILE);
  const closeJournal = () => {
    if (journal !== undefined) closeSync(journal);
    journal = undefined;
  };
  return {
    writeState: (s) => writeFileAtomic(join(dir, STATE_FILE), JSON.stringify(s, null, 2) + '\n'),
    writeRootMaterial(id, certPem, keyPem) {
      const f = rootFiles(id);
      const k = writeFileAtomic(join(dir, f.key), keyPem);
      if (!k.ok) return k;
      return writeFileAtomic(join(dir, f.cert), certPem);
    },
    removeRootMaterial(id) {
      const f = rootFiles(id);
      rmSync(join(dir, f.key), { force: true });
      rmSync(join(dir, f.tokenRecord), { force: true });
      rmSync(join(dir, f.cert), { force: true });
    },
    appendIssued(r) {
      // One write(2) per record without fsync: survives a process crash; a torn last line is skipped on load.
      try {
        journal ??= openSync(journalPath, 'a', 0o600);
        // An open descriptor keeps writing to a file that was deleted (the state directory
        // removed under us): the record would be lost. Refuse instead, so nothing is issued
        // that could not be revoked after a restart.
        if (fstatSync(journal).nlink === 0) {
          closeJournal();
          return err(caError('io', `${journalPath}: the issuance journal was deleted (is the state directory gone?)`, journalPath));
        }
        writeSync(journal, JSON.stringify(r) + '\n');
        return ok(undefined);
      } catch (e) {
        return err(ioError(journalPath, e));
      }
    },
    rewriteIssued(rs) {
      closeJournal();
      return writeFileAtomic(journalPath, rs.map((r) => JSON.stringify(r) + '\n').join(''));
    },
    close: closeJournal,
  };
}

const bad = (file: string, problem: string): Result<never, CaError> => err(caError('bad-state', `${file}: ${problem}`, file));

/** Reads and checks ca.json; undefined when the directory holds no state yet. */
export function readState(dir: string): Result<PersistedState | undefined, CaError> {
  const path = join(dir, STATE_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok(undefined);
    return err(ioError(path, e));
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return bad(path, `not valid JSON (${(e as Error).message})`);
  }
  // The fields ca.json shares with the record of a shared store are checked by one function.
  const checked = checkPersistedFields(v, path);
  if (!checked.ok) return checked;
  return ok(v as PersistedState);
}

/** Reads the issuance journal; a malformed line is an error naming the file and line, except a torn final line. */
export function readIssued(dir: string): Result<{ records: IssuanceRecord[]; tornTail: boolean }, CaError> {
  const path = join(dir, ISSUED_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok({ records: [], tornTail: false });
    return err(ioError(path, e));
  }
  const lines = text.split('\n');
  const records: IssuanceRecord[] = [];
  let tornTail = false;
  for (const [i, line] of lines.entries()) {
    if (line === '') continue;
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch {
      r = undefined;
    }
    if (!isIssuanceRecord(r)) {
      // Only the last line can be cut short by a crash (no newline after it); anything else is corruption.
      if (i === lines.length - 1) {
        tornTail = true;
        continue;
      }
      return bad(path, `line ${i + 1} is not a valid issuance record`);
    }
    records.push(r);
  }
  return ok({ records, tornTail });
}
