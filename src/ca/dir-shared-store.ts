// The CA state store over a state directory, in today's layout (ca.json, root-<n>-cert.pem,
// root-<n>-key.pem, issued.jsonl, token-signing-key.pem), every file written atomically. ca.json
// is the commit point: material is written before the ca.json that names it and removed after.
// Compare-and-swap is serialized within the process (writers in other processes are kept out by
// the state directory lock, state-lock.ts); the revision is a hash of ca.json and the token key.
import { closeSync, existsSync, openSync, readFileSync, rmSync, unwatchFile, watchFile, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { err, ok, shortHash } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import { checkPersistedFields, isIssuanceRecord } from './shared-store.js';
import type { CaRecord, CaStateStore, RootMaterial, StoreProblem, Versioned } from './shared-store.js';
import { ISSUED_FILE, rootFiles, STATE_FILE, writeFileAtomic } from './state-store.js';
import type { IssuanceRecord } from './state-store.js';
import { caError } from './types.js';
import type { CaError } from './types.js';

/** The token signing key's file (the same name src/auth uses). */
export const TOKEN_KEY_FILE_NAME = 'token-signing-key.pem';

// One queue per directory, so that two store objects on one directory in one process (replicas in
// tests) still compare-and-swap one at a time.
const queues = new Map<string, Promise<unknown>>();
function serialized<T>(dir: string, f: () => T): Promise<T> {
  const prev = queues.get(dir) ?? Promise.resolve();
  const next = prev.then(f, f);
  queues.set(
    dir,
    next.catch(() => undefined),
  );
  return next;
}

const ioError = (path: string, e: unknown): CaError =>
  caError('io', `${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, path);

function readOptional(path: string): Result<string | undefined, CaError> {
  try {
    return ok(readFileSync(path, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok(undefined);
    return err(ioError(path, e));
  }
}

/** Opens the CA state store in a directory (which must exist). */
export function createDirCaStateStore(dirIn: string): CaStateStore {
  const dir = resolve(dirIn);
  const statePath = join(dir, STATE_FILE);
  const journalPath = join(dir, ISSUED_FILE);
  const tokenPath = join(dir, TOKEN_KEY_FILE_NAME);
  const watchers = new Set<() => void>();

  const read = (): Result<Versioned<CaRecord> | undefined, CaError> => {
    const text = readOptional(statePath);
    if (!text.ok) return text;
    if (text.value === undefined) return ok(undefined);
    let v: unknown;
    try {
      v = JSON.parse(text.value);
    } catch (e) {
      return err(caError('bad-state', `${statePath}: not valid JSON (${(e as Error).message})`, statePath));
    }
    const s = checkPersistedFields(v, statePath);
    if (!s.ok) return s;
    const roots: Record<string, RootMaterial> = {};
    if (s.value.mode === 'self-signed') {
      for (const id of s.value.issuers as string[]) {
        const f = rootFiles(id);
        const cert = readOptional(join(dir, f.cert));
        const key = readOptional(join(dir, f.key));
        if (!cert.ok) return cert;
        if (!key.ok) return key;
        if (cert.value === undefined) return err(caError('bad-state', `${join(dir, f.cert)}: missing`, join(dir, f.cert)));
        if (key.value === undefined) return err(caError('bad-state', `${join(dir, f.key)}: missing`, join(dir, f.key)));
        roots[id] = { certPem: cert.value, keyPem: key.value };
      }
    }
    const token = readOptional(tokenPath);
    if (!token.ok) return token;
    const record = { ...(v as Omit<CaRecord, 'roots'>), roots, ...(token.value !== undefined ? { tokenKeyPem: token.value } : {}) };
    return ok({ value: record, revision: shortHash(text.value, token.value ?? '') });
  };

  const write = (prev: CaRecord | undefined, next: CaRecord): Result<string, CaError> => {
    for (const [id, m] of Object.entries(next.roots)) {
      const old = prev?.roots[id];
      if (old && old.certPem === m.certPem && old.keyPem === m.keyPem) continue;
      const f = rootFiles(id);
      const k = writeFileAtomic(join(dir, f.key), m.keyPem);
      if (!k.ok) return k;
      const c = writeFileAtomic(join(dir, f.cert), m.certPem);
      if (!c.ok) return c;
    }
    if (next.tokenKeyPem !== undefined && next.tokenKeyPem !== prev?.tokenKeyPem) {
      const t = writeFileAtomic(tokenPath, next.tokenKeyPem);
      if (!t.ok) return t;
    }
    // ca.json holds everything but the material, which lives in its own 0600 files.
    const { roots: _roots, tokenKeyPem: _token, ...persisted } = next;
    const text = JSON.stringify(persisted, null, 2) + '\n';
    const s = writeFileAtomic(statePath, text);
    if (!s.ok) return s;
    for (const id of Object.keys(prev?.roots ?? {})) {
      if (id in next.roots) continue;
      const f = rootFiles(id);
      rmSync(join(dir, f.key), { force: true });
      rmSync(join(dir, f.cert), { force: true });
    }
    return ok(shortHash(text, next.tokenKeyPem ?? (existsSync(tokenPath) ? readFileSync(tokenPath, 'utf8') : '')));
  };

  const readJournal = (): Result<{ records: IssuanceRecord[]; skipped: StoreProblem[] }, CaError> => {
    const text = readOptional(journalPath);
    if (!text.ok) return text;
    const records: IssuanceRecord[] = [];
    const skipped: StoreProblem[] = [];
    for (const [i, line] of (text.value ?? '').split('\n').entries()) {
      if (line === '') continue;
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        v = undefined;
      }
      if (isIssuanceRecord(v)) records.push(v);
      else skipped.push({ key: `${journalPath}:${i + 1}`, message: 'not a valid issuance record (torn or corrupt line)' });
    }
    return ok({ records, skipped });
  };

  return {
    where: `state directory ${dir}`,
    load: () => Promise.resolve(read()),
    compareAndSwap(expected, next) {
      return serialized(dir, () => {
        const cur = read();
        if (!cur.ok) return cur;
        if (cur.value?.revision !== expected) return ok({ applied: false as const, current: cur.value });
        const w = write(cur.value?.value, next);
        return w.ok ? ok({ applied: true as const, revision: w.value }) : w;
      });
    },
    watch(onRecord, onProblem) {
      const first = read();
      let lastRevision = first.ok ? first.value?.revision : undefined;
      // Stat polling rather than inotify: it sees atomic renames on every file system.
      const poll = () => {
        const r = read();
        if (!r.ok) {
          onProblem?.({ key: statePath, message: r.error.message });
          return;
        }
        if (!r.value || r.value.revision === lastRevision) return;
        lastRevision = r.value.revision;
        onRecord(r.value);
      };
      watchFile(statePath, { interval: 100, persistent: false }, poll);
      watchFile(tokenPath, { interval: 100, persistent: false }, poll);
      const stop = () => {
        unwatchFile(statePath, poll);
        unwatchFile(tokenPath, poll);
        watchers.delete(stop);
      };
      watchers.add(stop);
      return stop;
    },
    appendIssued(r) {
      // O_APPEND with one write(2) per record: two writers' lines never interleave.
      try {
        const fd = openSync(journalPath, 'a', 0o600);
        try {
          writeSync(fd, JSON.stringify(r) + '\n');
        } finally {
          closeSync(fd);
        }
        return ok(undefined);
      } catch (e) {
        return err(ioError(journalPath, e));
      }
    },
    flush: () => Promise.resolve(ok(undefined)),
    loadIssued: () => Promise.resolve(readJournal()),
    removeIssued(serials) {
      return serialized(dir, () => {
        const j = readJournal();
        if (!j.ok) return j;
        const drop = new Set(serials);
        return writeFileAtomic(
          journalPath,
          j.value.records
            .filter((r) => !drop.has(r.serial))
            .map((r) => JSON.stringify(r) + '\n')
            .join(''),
        );
      });
    },
    health: () => ({ reachable: true, pendingRecords: 0 }),
    close() {
      for (const stop of [...watchers]) stop();
    },
  };
}
