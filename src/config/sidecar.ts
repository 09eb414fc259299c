// Parser for networking.istio.io Sidecar (istio/api networking/v1alpha3/sidecar.proto): which
// services a proxy receives config for (`egress[].hosts`) and its outboundTrafficPolicy. The
// listener-shaping fields meshpilot does not act on are reported, never silently dropped.
import type { Sidecar, SidecarHost } from '../model/index.js';
import { readLabels } from './common.js';
import { checkDns1123Label } from './names.js';
import type { ObjectHeader } from './parse-document.js';
import type { DocReader, Field } from './yaml-reader.js';

// Valid Sidecar fields meshpilot does not act on; the proxy then gets Istio's behaviour without them.
const IGNORED_SPEC: Readonly<Record<string, string>> = {
  ingress: 'inbound listeners come from the Services that select the workload',
  inboundConnectionPool: 'connection pool settings are not applied',
};
const IGNORED_EGRESS: Readonly<Record<string, string>> = {
  port: 'the hosts apply to every port',
  bind: 'outbound listeners keep their addresses',
  captureMode: "the MeshConfig's captureMode applies",
};

// A host is `*`, `*.<suffix>` or a DNS name; Istio allows a wildcard only as the first label.
function checkHost(host: string): string | undefined {
  if (host === '*') return undefined;
  const name = host.startsWith('*.') ? host.slice(2) : host;
  if (name.includes('*')) return `'${host}': a wildcard is allowed only as the whole first label (*.example.com)`;
  const labels = name.split('.');
  if (labels.some((l) => !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(l)))
    return `'${host}' is not a host name: lowercase labels of letters, digits and '-'`;
  return undefined;
}

/** Reads one `<namespace>/<host>` (Istio requires the namespace part), or reports why it is malformed. */
export function parseSidecarHost(s: string): { ok: true; value: SidecarHost } | { ok: false; error: string } {
  const slash = s.indexOf('/');
  if (slash < 0) return { ok: false, error: `'${s}' must be <namespace>/<host> (./* for the Sidecar's namespace, */* for all)` };
  const namespace = s.slice(0, slash);
  const host = s.slice(slash + 1);
  if (namespace !== '*' && namespace !== '.' && namespace !== '~') {
    const p = checkDns1123Label(namespace);
    if (p) return { ok: false, error: `'${s}': namespace ${p}` };
  }
  const p = checkHost(host);
  if (p) return { ok: false, error: p };
  return { ok: true, value: { namespace, host } };
}

/** Reads a Sidecar; ingress, and egress port/bind/captureMode, are warned about and ignored. */
export function parseSidecar(r: DocReader, h: ObjectHeader, spec: Field | undefined): Sidecar {
  const m = spec ? (r.map(spec, ['workloadSelector', 'egress', 'outboundTrafficPolicy', ...Object.keys(IGNORED_SPEC)]) ?? {}) : {};
  const ignored = (f: Field, key: string, why: string) =>
    r.warn(f.at, f.path, `valid Istio field '${key}', not supported by meshpilot: ignored (${why})`);
  for (const [k, why] of Object.entries(IGNORED_SPEC)) if (m[k]) ignored(m[k], k, why);
  // Sidecar's workloadSelector has `labels` (not matchLabels); empty labels select nothing in particular.
  let selector: Record<string, string> | undefined;
  if (m.workloadSelector) {
    const ws = r.map(m.workloadSelector, ['labels']);
    const labels = ws?.labels ? readLabels(r, ws.labels) : {};
    if (Object.keys(labels).length > 0) selector = { ...labels };
  }
  const egressHosts: SidecarHost[] = [];
  for (const e of m.egress ? (r.list(m.egress) ?? []) : []) {
    const em = r.map(e, ['hosts', ...Object.keys(IGNORED_EGRESS)]);
    if (!em) continue;
    for (const [k, why] of Object.entries(IGNORED_EGRESS)) if (em[k]) ignored(em[k], k, why);
    if (!em.hosts) {
      r.error(e.at, `${e.path}.hosts`, 'required: at least one <namespace>/<host>');
      continue;
    }
    for (const hf of r.strList(em.hosts)) {
      const parsed = parseSidecarHost(hf.value);
      if (!parsed.ok) r.error(hf.field.at, hf.field.path, parsed.error);
      else egressHosts.push(parsed.value);
    }
  }
  let outboundTrafficPolicy: Sidecar['outboundTrafficPolicy'];
  if (m.outboundTrafficPolicy) {
    const p = r.map(m.outboundTrafficPolicy, ['mode'], { egressProxy: 'meshpilot runs no egress proxies' });
    const mode = p?.mode ? r.str(p.mode) : undefined;
    if (mode === 'ALLOW_ANY' || mode === 'REGISTRY_ONLY') outboundTrafficPolicy = mode;
    else if (mode !== undefined) r.error(p!.mode!.at, p!.mode!.path, `must be one of ALLOW_ANY, REGISTRY_ONLY, got ${mode}`);
  }
  // Istio: a Sidecar without egress lets its proxies see what they would without it.
  return {
    namespace: h.namespace,
    name: h.name,
    origin: h.origin,
    ...(selector ? { selector } : {}),
    egressHosts: m.egress ? egressHosts : [{ namespace: '*', host: '*' }],
    ...(outboundTrafficPolicy ? { outboundTrafficPolicy } : {}),
  };
}
