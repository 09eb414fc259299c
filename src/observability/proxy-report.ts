// What `meshpilot status` shows: the tracker's per-type xDS state joined with what the
// push controller knows of each proxy (its workload and proven identity) and the SVID the
// secrets manager holds for that workload.
import type { ProxyStatus, ProxyStatusTracker } from './proxy-status.js';

/** A proxy as the push controller admitted it. */
export interface AdmittedProxyInfo {
  readonly nodeId: string;
  readonly workloadKey: string;
  readonly spiffeId: string;
}

/** The SVID fields the report shows. */
export interface SvidInfo {
  readonly serialHex: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

/** One proxy in the report. */
export interface ProxyReport extends ProxyStatus {
  readonly workload?: string;
  readonly spiffeId?: string;
  readonly svid?: SvidInfo;
}

/** Builds the status report from its three sources. */
export interface ProxyReporter {
  list(): readonly ProxyReport[];
  /** One proxy by node id, or by workload (`namespace/name` or `name.namespace`) when that names exactly one. */
  get(proxy: string): ProxyReport | undefined;
}

/** Creates the reporter over narrow views of the tracker, the push controller and the SVID store. */
export function createProxyReporter(deps: {
  tracker: Pick<ProxyStatusTracker, 'list' | 'get'>;
  proxies: () => readonly AdmittedProxyInfo[];
  svidOf: (workloadKey: string) => SvidInfo | undefined;
}): ProxyReporter {
  const join = (s: ProxyStatus, admitted: readonly AdmittedProxyInfo[]): ProxyReport => {
    const a = admitted.find((p) => p.nodeId === s.nodeId);
    const svid = a ? deps.svidOf(a.workloadKey) : undefined;
    return {
      ...s,
      ...(a ? { workload: a.workloadKey, spiffeId: a.spiffeId } : {}),
      ...(svid ? { svid: { serialHex: svid.serialHex, notBefore: svid.notBefore, notAfter: svid.notAfter } } : {}),
    };
  };
  return {
    list() {
      const admitted = deps.proxies();
      return deps.tracker.list().map((s) => join(s, admitted));
    },
    get(proxy) {
      const admitted = deps.proxies();
      const direct = deps.tracker.get(proxy);
      if (direct) return join(direct, admitted);
      const key = proxy.includes('/') ? proxy : proxy.split('.').length === 2 ? proxy.split('.').reverse().join('/') : undefined;
      const matches = admitted.filter((p) => p.workloadKey === key);
      const only = matches.length === 1 ? deps.tracker.get(matches[0]!.nodeId) : undefined;
      return only ? join(only, admitted) : undefined;
    },
  };
}
