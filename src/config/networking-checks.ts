// Checks of ServiceEntries and DestinationRules across objects: a host defined twice (refused,
// naming both places), rules for one host (merged as Istio merges them), a rule for a host nothing
// defines, and entries loopback mode cannot reach.
import { entryPortKind, meshSettings, positionOf, pathInFile, qualifyHost, hostMatchRank, type SourceRef } from '../model/index.js';
import type { ConfigDiagnostic } from './diagnostics.js';
import type { ParsedObject } from './parse-document.js';

function at(origin: SourceRef | undefined, path: string, severity: ConfigDiagnostic['severity'], message: string): ConfigDiagnostic {
  const o = origin ?? { file: '(unknown)', line: 0, column: 0 };
  const p = positionOf(o, path) ?? { file: o.file, line: o.line, column: o.column };
  return { severity, file: p.file, line: p.line, column: p.column, path: pathInFile(o, path), message };
}

const where = (o: SourceRef | undefined): string => (o ? `${o.file}:${o.line}` : '(unknown)');

/**
 * Refuses a ServiceEntry host that a Service already defines and a host and port two ServiceEntries
 * define; merges DestinationRules for one host as Istio does, with a warning for what is dropped;
 * warns about a DestinationRule whose host matches no Service or ServiceEntry. Returns the objects kept.
 */
export function checkNetworking(objects: readonly ParsedObject[], diagnostics: ConfigDiagnostic[]): ParsedObject[] {
  const mc = objects.find((o) => o.kind === 'MeshConfig');
  const settings = meshSettings(mc?.kind === 'MeshConfig' ? mc.value : {});
  const domain = settings.domainSuffix;
  const serviceHosts = new Map<string, { name: string; origin?: SourceRef }>();
  for (const o of objects)
    if (o.kind === 'Service')
      serviceHosts.set(`${o.value.name}.${o.value.namespace}.svc.${domain}`, {
        name: `${o.value.namespace}/${o.value.name}`,
        origin: o.value.origin,
      });
  const entryPorts = new Map<string, { name: string; origin?: SourceRef }>();
  const out: ParsedObject[] = [];
  for (const o of objects) {
    if (o.kind !== 'ServiceEntry') continue;
    const e = o.value;
    if (e.resolution === 'NONE' && settings.captureMode === 'loopback' && e.hosts.length > 0)
      diagnostics.push(
        at(
          e.origin,
          'spec',
          'warning',
          `ServiceEntry ${e.namespace}/${e.name}: resolution NONE sends traffic on to the address the app connected to, which in loopback mode is its own sidecar: reachable in capture mode only (captureMode: iptables); use STATIC or DNS here`,
        ),
      );
    if (settings.captureMode === 'loopback' && e.resolution !== 'NONE')
      e.ports.forEach((p, i) => {
        if (p.number < 1024 && entryPortKind(p) === 'tcp')
          diagnostics.push(
            at(
              e.origin,
              `spec.ports[${i}].number`,
              'warning',
              `ServiceEntry ${e.namespace}/${e.name}: ${p.protocol} port ${p.number} is below 1024: in loopback mode its client listener would need privilege to bind, so it gets none; reachable in capture mode, or declare a port of 1024 or more with targetPort: ${p.targetPort ?? p.number}`,
            ),
          );
      });
    e.hosts.forEach((host, i) => {
      const svc = serviceHosts.get(host);
      if (svc) {
        diagnostics.push(
          at(e.origin, `spec.hosts[${i}]`, 'error', `host '${host}' is already defined by Service ${svc.name} (${where(svc.origin)})`),
        );
      }
      for (const p of e.ports) {
        const key = `${host}:${p.number}`;
        const first = entryPorts.get(key);
        if (first) {
          diagnostics.push(
            at(
              e.origin,
              `spec.hosts[${i}]`,
              'error',
              `host '${host}' port ${p.number} is also defined by ServiceEntry ${first.name} (${where(first.origin)}): meshpilot does not merge ServiceEntries, write one`,
            ),
          );
        } else entryPorts.set(key, { name: `${e.namespace}/${e.name}`, origin: e.origin });
      }
    });
  }
  const knownHosts = [...serviceHosts.keys(), ...[...entryPorts.keys()].map((k) => k.slice(0, k.lastIndexOf(':')))];
  // Istio merges DestinationRules for one host (without workload selectors, in one namespace): the
  // first rule's trafficPolicy applies (a later one's only when the first has none), and subsets
  // are joined, the first of a name kept. meshpilot does the same, in file order, and says so.
  const rules = new Map<string, number>();
  for (const o of objects) {
    if (o.kind !== 'DestinationRule' || o.value.host === '') {
      out.push(o);
      continue;
    }
    const r = o.value;
    const host = qualifyHost(r.host, r.namespace, domain);
    if (!knownHosts.some((h) => hostMatchRank(host, h) !== undefined))
      diagnostics.push(
        at(
          r.origin,
          'spec.host',
          'warning',
          `DestinationRule ${r.namespace}/${r.name}: host '${host}' matches no Service or ServiceEntry: it has no effect`,
        ),
      );
    const key = `${r.namespace}|${host}`;
    const firstIndex = rules.get(key);
    if (firstIndex === undefined || r.workloadSelector) {
      if (!r.workloadSelector) rules.set(key, out.length);
      out.push(o);
      continue;
    }
    const first = out[firstIndex] as Extract<ParsedObject, { kind: 'DestinationRule' }>;
    const f = first.value;
    const merged = `merged into DestinationRule ${f.namespace}/${f.name} (${where(f.origin)}) for host '${host}', as Istio merges rules for one host`;
    if (r.trafficPolicy && f.trafficPolicy)
      diagnostics.push(
        at(r.origin, 'spec.trafficPolicy', 'warning', `${merged}: this trafficPolicy is ignored (the first rule's applies)`),
      );
    const subsets = [...f.subsets];
    r.subsets.forEach((sub, i) => {
      if (subsets.some((x) => x.name === sub.name))
        diagnostics.push(
          at(
            r.origin,
            `spec.subsets[${i}].name`,
            'warning',
            `${merged}: subset '${sub.name}' is ignored (the first rule has one of that name)`,
          ),
        );
      else subsets.push(sub);
    });
    if (!(r.trafficPolicy && f.trafficPolicy) && r.subsets.length === 0) diagnostics.push(at(r.origin, 'spec.host', 'info', merged));
    const trafficPolicy = f.trafficPolicy ?? r.trafficPolicy;
    out[firstIndex] = { kind: 'DestinationRule', value: { ...f, subsets, ...(trafficPolicy ? { trafficPolicy } : {}) } };
  }
  return out;
}
