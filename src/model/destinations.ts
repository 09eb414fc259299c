// How a client finds the DestinationRule for a host, after Istio: a short name is qualified with
// the rule's namespace, an exact host beats a `*.suffix`, a longer suffix beats a shorter one, and
// a rule with a workloadSelector beats one without for the workloads it selects.
import { selectorMatches } from './labels.js';
import type { DestinationRule, WorkloadEntry } from './types.js';

/** A DestinationRule's host as a fully qualified name: `reviews` in namespace `ns` is `reviews.ns.svc.<domainSuffix>`. */
export function qualifyHost(host: string, namespace: string, domainSuffix: string): string {
  return host.includes('.') ? host : `${host}.${namespace}.svc.${domainSuffix}`;
}

/** Whether a host pattern (exact, or `*.suffix`) matches a host; undefined when not, else how specific (higher wins). */
export function hostMatchRank(pattern: string, host: string): number | undefined {
  if (pattern === host) return Number.MAX_SAFE_INTEGER;
  if (pattern.startsWith('*.') && host.endsWith(pattern.slice(1))) return pattern.length;
  return undefined;
}

/** The DestinationRule a client (`workload`, if known) uses toward `host`, if any. */
export function destinationRuleFor(
  rules: readonly DestinationRule[],
  host: string,
  domainSuffix: string,
  workload?: WorkloadEntry,
): DestinationRule | undefined {
  let best: { rule: DestinationRule; selected: boolean; rank: number } | undefined;
  for (const rule of rules) {
    if (rule.host === '') continue;
    if (rule.workloadSelector) {
      if (!workload || workload.namespace !== rule.namespace || !selectorMatches(rule.workloadSelector, workload.labels)) continue;
    }
    const rank = hostMatchRank(qualifyHost(rule.host, rule.namespace, domainSuffix), host);
    if (rank === undefined) continue;
    // A selected rule outranks every rule without a selector.
    const selected = rule.workloadSelector !== undefined;
    if (!best || (selected && !best.selected) || (selected === best.selected && rank > best.rank)) best = { rule, selected, rank };
  }
  return best?.rule;
}
