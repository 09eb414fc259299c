import { selectorMatches } from './labels.js';
import type { Labels } from './types.js';

/** Finds the labelled objects of a namespace that a selector picks, without scanning every object. */
export interface SelectorIndex<T> {
  /** Objects of `namespace` whose labels hold every selector label, in insertion order; an empty selector picks none. */
  select(namespace: string, selector: Labels): readonly T[];
}

// NUL cannot occur in a namespace, a label key or a label value, so the joined key is unambiguous.
const pairKey = (namespace: string, key: string, value: string): string => `${namespace}\0${key}\0${value}`;

/**
 * Indexes objects by namespace and label pair. A query starts from the smallest bucket among the
 * selector's pairs and filters it, so n services over n workloads costs about n, not n².
 */
export function createSelectorIndex<T>(objects: Iterable<T>, namespaceOf: (o: T) => string, labelsOf: (o: T) => Labels): SelectorIndex<T> {
  const buckets = new Map<string, T[]>();
  for (const o of objects) {
    const ns = namespaceOf(o);
    for (const [k, v] of Object.entries(labelsOf(o))) {
      const key = pairKey(ns, k, v);
      const list = buckets.get(key);
      if (list) list.push(o);
      else buckets.set(key, [o]);
    }
  }
  return {
    select(namespace, selector) {
      let smallest: readonly T[] | undefined;
      for (const [k, v] of Object.entries(selector)) {
        const bucket = buckets.get(pairKey(namespace, k, v)) ?? [];
        if (!smallest || bucket.length < smallest.length) smallest = bucket;
        if (smallest.length === 0) return [];
      }
      if (!smallest) return [];
      return smallest.filter((o) => selectorMatches(selector, labelsOf(o)));
    },
  };
}
