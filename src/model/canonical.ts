import { shortHash } from '../lib/index.js';

// Deterministic JSON for content hashes: sorted keys, `origin` (source positions) left out, so
// moving an object within or between files does not change any version.
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    if (value instanceof Map) throw new Error('canonical: maps are only allowed under origin');
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      if (k === 'origin') continue;
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = canonical(v);
    }
    return out;
  }
  return value;
}

/** Hash of an object's normalized content, ignoring `origin`. */
export function contentHash(kind: string, value: unknown): string {
  return shortHash(kind, '\n', JSON.stringify(canonical(value)));
}

/** Freezes a value and everything reachable from it (maps stay typed as readonly). */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    if (value instanceof Map) return value;
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
