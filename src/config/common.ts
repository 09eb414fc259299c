// Readers shared by the object parsers: labels, selectors and strings matched with Istio's wildcards.
import type { Labels } from '../model/index.js';
import { checkLabelKey, checkLabelValue } from './names.js';
import type { DocReader, Field } from './yaml-reader.js';

/** Reads a label map, checking every key and value; invalid entries are reported and left out. */
export function readLabels(r: DocReader, f: Field): Labels {
  const out: Record<string, string> = {};
  for (const e of r.entries(f) ?? []) {
    const keyProblem = checkLabelKey(e.key);
    if (keyProblem) {
      r.error(e.keyAt, e.value.path, keyProblem);
      continue;
    }
    const value = r.str(e.value, " (label values are strings: quote numbers and booleans, e.g. version: '1')");
    if (value === undefined) continue;
    const valueProblem = checkLabelValue(value);
    if (valueProblem) {
      r.error(e.value.at, e.value.path, valueProblem);
      continue;
    }
    out[e.key] = value;
  }
  return out;
}

/** Reads an Istio WorkloadSelector (`{matchLabels}`); an empty one is treated as absent (selects everything in scope). */
export function readWorkloadSelector(r: DocReader, f: Field | undefined): Labels | undefined {
  if (!f) return undefined;
  const m = r.map(f, ['matchLabels']);
  if (!m?.matchLabels) return undefined;
  const labels = readLabels(r, m.matchLabels);
  return Object.keys(labels).length > 0 ? labels : undefined;
}

/** How Istio matches a string field: exact, prefix (`abc*`), suffix (`*abc`) or presence (`*`). */
export type MatchKind = 'exact' | 'prefix' | 'suffix' | 'any';

/** Classifies an Istio match string, or returns the rule it breaks (a `*` anywhere but at one end). */
export function matchKind(s: string): MatchKind | { problem: string } {
  if (s === '') return { problem: 'must not be empty' };
  if (s === '*') return 'any';
  const stars = s.split('*').length - 1;
  if (stars === 0) return 'exact';
  if (stars === 1 && s.endsWith('*')) return 'prefix';
  if (stars === 1 && s.startsWith('*')) return 'suffix';
  return { problem: `'${s}' has a '*' in the middle: only exact, prefix ('abc*'), suffix ('*abc') or '*' matches are supported` };
}
