import { createHash } from 'node:crypto';

/** A short, stable content hash (first 16 hex chars of SHA-256): used as resource versions. */
export function shortHash(...parts: readonly (Uint8Array | string)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex').slice(0, 16);
}
