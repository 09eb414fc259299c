// Checks of a loaded model for config that is valid but probably not what was meant, after the
// warnings of Istio's analyzers (istioctl analyze): a policy that selects no workload, a port no
// Service exposes, a principal in a trust domain the mesh does not have.
import {
  pathInFile,
  positionOf,
  selectorMatches,
  workloadPortFor,
  type AuthorizationPolicy,
  type Labels,
  type MeshModel,
  type ObjectMeta,
  type WorkloadEntry,
} from '../model/index.js';
import type { ConfigDiagnostic } from './diagnostics.js';

function warning(o: ObjectMeta, path: string, message: string): ConfigDiagnostic {
  const p = positionOf(o.origin, path) ?? { file: o.origin?.file ?? '', line: 0, column: 0 };
  return { severity: 'warning', file: p.file, line: p.line, column: p.column, path: pathInFile(o.origin, path), message };
}

type Selecting = ObjectMeta & { readonly selector?: Labels };

function selected(model: MeshModel, p: Selecting): WorkloadEntry[] {
  const root = model.settings.rootNamespace;
  return model.workloads.filter((w) => (p.namespace === w.namespace || p.namespace === root) && selectorMatches(p.selector, w.labels));
}

/** The workload ports the Services of these workloads send traffic to. */
function exposedPorts(model: MeshModel, workloads: readonly WorkloadEntry[]): Set<number> {
  return new Set(workloads.flatMap((w) => model.servicesOf(w).flatMap((s) => s.ports.map((sp) => workloadPortFor(sp, w)))));
}

// A principal's trust domain is the text before its first '/', when the value spells it out.
function trustDomainOf(principal: string): string | undefined {
  const slash = principal.indexOf('/');
  if (slash <= 0 || principal.startsWith('*')) return undefined;
  const td = principal.slice(0, slash);
  return td.includes('*') ? undefined : td;
}

function principalFields(p: AuthorizationPolicy): { path: string; value: string }[] {
  const out: { path: string; value: string }[] = [];
  p.rules.forEach((rule, i) => {
    rule.from.forEach((f, j) => {
      for (const key of ['principals', 'notPrincipals'] as const)
        f.source[key].forEach((value, k) => out.push({ path: `spec.rules[${i}].from[${j}].source.${key}[${k}]`, value }));
    });
    rule.when.forEach((c, j) => {
      if (c.key !== 'source.principal') return;
      c.values.forEach((value, k) => out.push({ path: `spec.rules[${i}].when[${j}].values[${k}]`, value }));
      c.notValues.forEach((value, k) => out.push({ path: `spec.rules[${i}].when[${j}].notValues[${k}]`, value }));
    });
  });
  return out;
}

function portFields(p: AuthorizationPolicy): { path: string; value: string }[] {
  const out: { path: string; value: string }[] = [];
  p.rules.forEach((rule, i) => {
    rule.to.forEach((t, j) => {
      for (const key of ['ports', 'notPorts'] as const)
        t.operation[key].forEach((value, k) => out.push({ path: `spec.rules[${i}].to[${j}].operation.${key}[${k}]`, value }));
    });
    rule.when.forEach((c, j) => {
      if (c.key !== 'destination.port') return;
      c.values.forEach((value, k) => out.push({ path: `spec.rules[${i}].when[${j}].values[${k}]`, value }));
      c.notValues.forEach((value, k) => out.push({ path: `spec.rules[${i}].when[${j}].notValues[${k}]`, value }));
    });
  });
  return out;
}

/** Returns a warning for each policy that selects no workload, port no Service exposes, and principal in a foreign trust domain. */
export function analyzeModel(model: MeshModel): ConfigDiagnostic[] {
  const out: ConfigDiagnostic[] = [];
  const kinds: [string, readonly Selecting[]][] = [
    ['PeerAuthentication', model.peerAuthentications],
    ['AuthorizationPolicy', model.authorizationPolicies],
    ['RequestAuthentication', model.requestAuthentications],
  ];
  for (const [kind, list] of kinds)
    for (const p of list)
      if (selected(model, p).length === 0)
        out.push(
          warning(
            p,
            p.selector ? 'spec.selector' : 'spec',
            `${kind} ${p.namespace}/${p.name} selects no workload${p.selector ? ': no WorkloadEntry in scope has these labels' : ` in namespace ${p.namespace}`}`,
          ),
        );

  for (const pa of model.peerAuthentications) {
    const ports = exposedPorts(model, selected(model, pa));
    for (const port of Object.keys(pa.portLevelMtls).map(Number))
      if (!ports.has(port))
        out.push(
          warning(
            pa,
            `spec.portLevelMtls[${JSON.stringify(String(port))}]`,
            `port ${port} is not a port any Service sends to on the selected workloads`,
          ),
        );
  }

  const own = new Set([model.settings.trustDomain, ...model.settings.trustDomainAliases, 'cluster.local']);
  for (const p of model.authorizationPolicies) {
    const ports = exposedPorts(model, selected(model, p));
    for (const f of portFields(p))
      if (/^\d+$/.test(f.value) && !ports.has(Number(f.value)))
        out.push(warning(p, f.path, `port ${f.value} is not a port any Service sends to on the selected workloads: it matches nothing`));
    for (const f of principalFields(p)) {
      const td = trustDomainOf(f.value);
      if (td !== undefined && !own.has(td))
        out.push(
          warning(
            p,
            f.path,
            `principal '${f.value}' is in trust domain '${td}', which is not the mesh's (${model.settings.trustDomain}) nor an alias of it`,
          ),
        );
    }
  }
  return out;
}
