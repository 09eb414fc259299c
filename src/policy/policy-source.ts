// What the push path asks of policy: for one workload port, the filters, the mTLS mode
// and the HCM options. Compiled once per model version (and JWKS change), not once per
// proxy, and each diagnostic is logged once, not on every push.
import { workloadPortFor, type MeshModel, type ServicePort, type WorkloadEntry } from '../model/index.js';
import type { Logger } from '../observability/index.js';
import { inboundAccessLog } from './access-log.js';
import { compileInboundPolicy } from './inbound.js';
import type { PolicyFilter, PortProtocol } from './authorization.js';
import { INBOUND_HCM_OPTIONS } from './path-normalization.js';
import type { JwksSource } from './request-authentication.js';

/** The inbound policy of one workload port, ready for the generator. */
export interface InboundPolicyResult {
  readonly httpFilters: readonly PolicyFilter[];
  readonly networkFilters: readonly PolicyFilter[];
  readonly mtlsMode: 'STRICT' | 'PERMISSIVE' | 'DISABLE';
  readonly hcmOptions: Readonly<Record<string, unknown>>;
}

/** A memoizing, logging policy source. */
export interface InboundPolicySourceHandle {
  (model: MeshModel, workload: WorkloadEntry, port: ServicePort, protocol: PortProtocol): InboundPolicyResult;
  /** Forgets compiled results (the JWKS keys changed). */
  invalidate(): void;
}

/** Creates the policy source; with `plaintextOnly` (development mode, no keys served) every port is plaintext. */
export function createInboundPolicySource(deps: {
  fetchJwks: JwksSource;
  log: Logger;
  plaintextOnly?: boolean;
}): InboundPolicySourceHandle {
  let cacheVersion = '';
  let cache = new Map<string, InboundPolicyResult>();
  const logged = new Set<string>();

  const source = ((model, workload, port, protocol) => {
    if (model.version !== cacheVersion) {
      cache = new Map();
      cacheVersion = model.version;
    }
    const key = `${workload.namespace}/${workload.name}:${port.port}:${protocol}`;
    let r = cache.get(key);
    if (r) return r;
    const c = compileInboundPolicy(model, workload, workloadPortFor(port, workload), protocol, deps.fetchJwks);
    for (const d of c.diagnostics) {
      const line = `${model.version} ${d.severity} ${d.file ?? ''}:${d.line ?? ''} ${d.path} ${d.message}`;
      if (logged.has(line)) continue;
      if (logged.size > 10_000) logged.clear();
      logged.add(line);
      (d.severity === 'error' ? deps.log.error : deps.log.warn)('policy diagnostic', {
        workload: `${workload.namespace}/${workload.name}`,
        port: port.port,
        object: d.object,
        file: d.file,
        line: d.line,
        path: d.path,
        message: d.message,
      });
    }
    r = {
      httpFilters: c.httpFilters,
      networkFilters: c.networkFilters,
      mtlsMode: deps.plaintextOnly ? 'DISABLE' : c.mtlsMode,
      // The log names its workload, so the options differ per workload only when it is on.
      hcmOptions: model.settings.accessLog
        ? { ...INBOUND_HCM_OPTIONS, accessLog: inboundAccessLog(`${workload.namespace}/${workload.name}`) }
        : INBOUND_HCM_OPTIONS,
    };
    cache.set(key, r);
    return r;
  }) as InboundPolicySourceHandle;
  source.invalidate = () => {
    cache = new Map();
    cacheVersion = '';
  };
  return source;
}
