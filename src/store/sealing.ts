// Sealing of key material kept in etcd: AES-256-GCM with a key the operator provides in a
// file (--ca-store-key). Each value is bound to its name (additional authenticated data), so a
// sealed value moved to another name does not open. The key's fingerprint is kept beside the
// values, so a wrong key is reported as such rather than as corrupt data.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { err, ok } from '../lib/index.js';
import type { Result } from '../lib/index.js';

const PREFIX = 'aes-256-gcm:v1:';

/** Seals and opens values with one key. */
export interface Sealer {
  /** A short, non-secret fingerprint of the key (SHA-256 of it, 16 hex digits). */
  readonly fingerprint: string;
  seal(plaintext: string, name: string): string;
  open(sealed: string, name: string): Result<string>;
}

/** True when the value looks sealed (never stored in the clear). */
export const isSealed = (v: string): boolean => v.startsWith(PREFIX);

/** Makes a sealer from a 32-byte key. */
export function createSealer(key: Buffer): Sealer {
  if (key.length !== 32) throw new Error('AES-256 needs a 32-byte key');
  const fingerprint = createHash('sha256').update('meshpilot-ca-store-key').update(key).digest('hex').slice(0, 16);
  return {
    fingerprint,
    seal(plaintext, name) {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key, iv);
      c.setAAD(Buffer.from(name));
      const ct = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
      return PREFIX + Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64');
    },
    open(sealed, name) {
      if (!isSealed(sealed)) return err(`${name}: not sealed (expected ${PREFIX}...)`);
      const raw = Buffer.from(sealed.slice(PREFIX.length), 'base64');
      if (raw.length < 12 + 16) return err(`${name}: sealed value is too short`);
      try {
        const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
        d.setAAD(Buffer.from(name));
        d.setAuthTag(raw.subarray(12, 28));
        return ok(Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8'));
      } catch {
        return err(`${name}: does not open with this key (wrong key, or the value was altered)`);
      }
    },
  };
}

/**
 * Reads the sealing key file given by `flag`: 32 raw bytes, 64 hex digits, or base64 of 32 bytes
 * (e.g. made with `openssl rand -base64 32 > ca-store.key`). Errors name the flag and the file.
 */
export function readSealingKeyFile(flag: string, file: string): Result<Buffer> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return err(`${flag} ${file}: cannot read it (${code === 'ENOENT' ? 'no such file' : (code ?? (e as Error).message)})`);
  }
  if (bytes.length === 32) return ok(bytes);
  const text = bytes.toString('latin1').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return ok(Buffer.from(text, 'hex'));
  if (/^[A-Za-z0-9+/]{43}=$/.test(text)) return ok(Buffer.from(text, 'base64'));
  return err(
    `${flag} ${file}: expected a 256-bit key: 32 raw bytes, 64 hex digits or 44 base64 characters (make one with: openssl rand -base64 32 > ${file})`,
  );
}
