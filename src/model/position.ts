import type { SourceRef } from './types.js';

/**
 * Returns file, line and column for a field path of an object (`spec.rules[2].from[0]`), falling back
 * to the nearest recorded ancestor and then to the object itself; undefined when the object has no origin.
 */
export function positionOf(origin: SourceRef | undefined, path: string): { file: string; line: number; column: number } | undefined {
  if (!origin) return undefined;
  let p = path;
  while (p !== '') {
    const hit = origin.fields?.get(p);
    if (hit) return { file: origin.file, line: hit.line, column: hit.column };
    const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
    p = cut <= 0 ? '' : p.slice(0, cut);
  }
  return { file: origin.file, line: origin.line, column: origin.column };
}

/** The field path as written in the file: below `items[i]` when the object is an item of a `kind: List`. */
export function pathInFile(origin: SourceRef | undefined, path: string): string {
  const prefix = origin?.pathPrefix;
  if (!prefix) return path;
  return path === '' ? prefix : `${prefix}.${path}`;
}
