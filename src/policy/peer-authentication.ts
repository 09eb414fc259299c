// PeerAuthentication → the effective mTLS mode of each workload port, after Istio's
// ComposePeerAuthentication (pilot/pkg/security/authn): mesh < namespace < workload, UNSET inherits,
// port-level modes override per port, PERMISSIVE when nothing applies.
import { workloadPortFor, type MeshModel, type MtlsMode, type PeerAuthentication, type WorkloadEntry } from '../model/index.js';
import { diagnosticAt, type PolicyDiagnostic } from './diagnostics.js';

/** An effective mTLS mode (UNSET has been resolved). */
export type EffectiveMtlsMode = Exclude<MtlsMode, 'UNSET'>;

/** The mTLS modes of one workload: one per port, and the mode of any other port. */
export interface CompiledPeerAuthentication {
  /** The mode of every port that has no port-level override. */
  readonly defaultMode: EffectiveMtlsMode;
  /** Workload port → mode, for every port a Service exposes on the workload and every port-level override. */
  readonly ports: Readonly<Record<number, EffectiveMtlsMode>>;
  /** The policies that decided, most specific last (`namespace/name`), for explain output. */
  readonly from: readonly string[];
  readonly diagnostics: readonly PolicyDiagnostic[];
}

/** Istio's mode when no PeerAuthentication applies. */
export const DEFAULT_MTLS_MODE: EffectiveMtlsMode = 'PERMISSIVE';

const KIND = 'PeerAuthentication';

/** Returns the mode of a workload port: its port-level mode, else the default. */
export function mtlsModeFor(compiled: CompiledPeerAuthentication, port: number): EffectiveMtlsMode {
  return compiled.ports[port] ?? compiled.defaultMode;
}

/** Computes the effective mTLS mode of each port of a workload from the PeerAuthentications that apply to it. */
export function compilePeerAuthentication(model: MeshModel, workload: WorkloadEntry): CompiledPeerAuthentication {
  const diagnostics: PolicyDiagnostic[] = [];
  const root = model.settings.rootNamespace;
  const mesh: PeerAuthentication[] = [];
  const namespace: PeerAuthentication[] = [];
  const selected: PeerAuthentication[] = [];
  for (const pa of model.peerAuthenticationsFor(workload)) {
    const hasSelector = pa.selector !== undefined && Object.keys(pa.selector).length > 0;
    if (!hasSelector) (pa.namespace === root ? mesh : namespace).push(pa);
    else if (pa.namespace !== root) selected.push(pa);
    else
      diagnostics.push(
        diagnosticAt(
          pa,
          KIND,
          'spec.selector',
          'warning',
          `ignored: a PeerAuthentication with a selector in the root namespace (${root}) applies to nothing, as in Istio`,
        ),
      );
  }
  // Istio keeps the oldest of several policies at one level; we have no creation time, so the first by name wins.
  const pick = (list: PeerAuthentication[], level: string): PeerAuthentication | undefined => {
    const sorted = [...list].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const [first, ...rest] = sorted;
    for (const other of rest)
      diagnostics.push(
        diagnosticAt(
          other,
          KIND,
          'metadata.name',
          'warning',
          `ignored for workload ${workload.namespace}/${workload.name}: ${level} PeerAuthentication ${first!.namespace}/${first!.name} also applies and wins (first by name)`,
        ),
      );
    return first;
  };
  const from: string[] = [];
  let mode: EffectiveMtlsMode = DEFAULT_MTLS_MODE;
  for (const pa of [pick(mesh, 'mesh-wide'), pick(namespace, 'namespace-wide')]) {
    if (pa && pa.mtlsMode !== 'UNSET') {
      mode = pa.mtlsMode;
      from.push(`${pa.namespace}/${pa.name}`);
    }
  }
  const wl = pick(selected, 'workload');
  const ports: Record<number, EffectiveMtlsMode> = {};
  if (wl && wl.mtlsMode !== 'UNSET') {
    mode = wl.mtlsMode;
    from.push(`${wl.namespace}/${wl.name}`);
  }
  const exposed = new Set<number>();
  for (const svc of model.servicesOf(workload)) for (const p of svc.ports) exposed.add(workloadPortFor(p, workload));
  for (const p of exposed) ports[p] = mode;
  if (wl) {
    for (const [key, portMode] of Object.entries(wl.portLevelMtls)) {
      const port = Number(key);
      ports[port] = portMode === 'UNSET' ? mode : portMode;
      if (!exposed.has(port))
        diagnostics.push(
          diagnosticAt(
            wl,
            KIND,
            `spec.portLevelMtls[${JSON.stringify(key)}]`,
            'warning',
            `port ${port} is not a port any Service exposes on workload ${workload.namespace}/${workload.name}`,
          ),
        );
    }
    if (Object.keys(wl.portLevelMtls).length > 0 && !from.includes(`${wl.namespace}/${wl.name}`)) from.push(`${wl.namespace}/${wl.name}`);
  }
  return { defaultMode: mode, ports, from, diagnostics };
}
