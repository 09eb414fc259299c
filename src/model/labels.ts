import type { Labels } from './types.js';

/** True when every selector label is present with the same value; an absent or empty selector matches everything. */
export function selectorMatches(selector: Labels | undefined, labels: Labels): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector)) {
    if (labels[k] !== v) return false;
  }
  return true;
}
