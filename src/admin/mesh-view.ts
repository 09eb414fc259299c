// The mesh page's data: workloads with identity, SVID and per-type sync state, the
// who-may-call-whom matrix from the policy evaluator, the CA, recent events. Built only when a
// page asks (never on the push path), from narrow views of the running modules.
import type { MeshModel } from '../model/index.js';
import { workloadPortFor } from '../model/index.js';
import { portKind } from '../generate/index.js';
import { compileInboundPolicy, evaluate, type CompiledInboundPolicy } from '../policy/index.js';
import type { ProxyReport, SvidInfo } from '../observability/index.js';
import type { CaStatus } from '../ca/index.js';
import type { MeshEvent } from './mesh-events.js';

/** One workload row. */
export interface WorkloadView {
  readonly namespace: string;
  readonly name: string;
  readonly spiffeId: string;
  readonly address: string;
  readonly svid?: SvidInfo & { readonly renewAt: number };
  readonly proxies: readonly {
    readonly nodeId: string;
    readonly types: readonly { readonly type: string; readonly status: string; readonly nack?: string }[];
  }[];
}

/** One matrix cell: may `from` call `to` on its first service port. */
export interface MatrixCell {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly verdict: 'allow' | 'deny' | 'would-deny';
  readonly mtls: string;
  /** The deciding policy and why, for the cell's tooltip. */
  readonly detail: string;
}

/** Everything the page renders. */
export interface MeshView {
  readonly now: number;
  readonly trustDomain: string;
  readonly configVersion?: string;
  readonly workloads: readonly WorkloadView[];
  readonly matrix: { readonly services: readonly string[]; readonly cells: readonly MatrixCell[]; readonly truncatedFrom?: number };
  readonly ca: {
    readonly mode: string;
    readonly rotation: string;
    readonly roots: readonly { readonly subject: string; readonly serialHex: string; readonly notAfter: number }[];
    readonly revoked: readonly { readonly serialHex: string; readonly spiffeId: string; readonly revokedAt: number }[];
    readonly crlNextUpdate?: number;
  };
  readonly events: readonly MeshEvent[];
}

/** The running modules the view reads. */
export interface MeshViewSources {
  model(): MeshModel | undefined;
  proxies(): readonly ProxyReport[];
  svidOf(workloadKey: string): SvidInfo | undefined;
  ca(): CaStatus;
  crlNextUpdates(): readonly number[];
  events(): readonly MeshEvent[];
  now(): number;
  /** The renewal point as a fraction of an SVID's lifetime (jitter aside). */
  readonly renewAtFraction: number;
}

/** A matrix over more services than this would be unreadable (and n² to evaluate): the page says it was cut. */
export const MATRIX_MAX_SERVICES = 40;

/** Returns a function building the view; compiled policies are memoized per config version. */
export function createMeshViewBuilder(src: MeshViewSources): () => MeshView {
  let compiledFor: string | undefined;
  let compiled = new Map<string, CompiledInboundPolicy>();
  return () => {
    const model = src.model();
    if (model && model.version !== compiledFor) {
      compiledFor = model.version;
      compiled = new Map();
    }
    const td = model?.settings.trustDomain ?? '';
    const idOf = (ns: string, sa: string) => `spiffe://${td}/ns/${ns}/sa/${sa}`;
    const byWorkload = new Map<string, ProxyReport[]>();
    for (const p of src.proxies()) {
      if (!p.workload) continue;
      byWorkload.set(p.workload, [...(byWorkload.get(p.workload) ?? []), p]);
    }
    const workloads: WorkloadView[] = (model?.workloads ?? []).map((w) => {
      const key = `${w.namespace}/${w.name}`;
      const svid = src.svidOf(key);
      return {
        namespace: w.namespace,
        name: w.name,
        spiffeId: idOf(w.serviceAccount.namespace, w.serviceAccount.name),
        address: w.address,
        // Named fields only: the store's record also holds the chain and the private key, which never leave.
        ...(svid
          ? {
              svid: {
                serialHex: svid.serialHex,
                notBefore: svid.notBefore,
                notAfter: svid.notAfter,
                renewAt: svid.notBefore + (svid.notAfter - svid.notBefore) * src.renewAtFraction,
              },
            }
          : {}),
        proxies: (byWorkload.get(key) ?? []).map((p) => ({
          nodeId: p.nodeId,
          // The tracker keeps the last NACK after a later ACK; the page shows it only while it holds.
          types: p.types.map((t) => ({
            type: t.type,
            status: t.status,
            ...(t.nack && t.status === 'NACKED' ? { nack: t.nack.error } : {}),
          })),
        })),
      };
    });

    const cells: MatrixCell[] = [];
    const allServices = model?.services ?? [];
    const services = allServices.slice(0, MATRIX_MAX_SERVICES);
    if (model) {
      for (const to of services) {
        const target = model.workloadsOf(to)[0];
        const sp = to.ports[0];
        if (!target || !sp) continue;
        const protocol = portKind(sp);
        const ck = `${target.namespace}/${target.name}:${sp.port}`;
        let policy = compiled.get(ck);
        if (!policy) {
          // JWKS are not fetched for the page: a JWT rule then reads as not satisfied, as with no token.
          policy = compileInboundPolicy(model, target, workloadPortFor(sp, target), protocol, () => undefined);
          compiled.set(ck, policy);
        }
        for (const from of services) {
          const caller = model.workloadsOf(from)[0];
          if (!caller) continue;
          const d = evaluate(policy, {
            port: sp.port,
            sourcePrincipal: idOf(caller.serviceAccount.namespace, caller.serviceAccount.name),
            sourceIp: caller.address,
            destinationIp: target.address,
            ...(protocol === 'http' ? { method: 'GET', path: '/', host: `${to.name}.${to.namespace}` } : {}),
          });
          const wouldDeny = d.verdict === 'allow' && d.dryRun.some((r) => r.startsWith('would deny'));
          // The evaluator's reason names the deciding policy and rule when one decided.
          const detail = [d.reason, ...d.dryRun.map((r) => `dry-run: ${r}`)].join('\n');
          cells.push({
            from: `${from.namespace}/${from.name}`,
            to: `${to.namespace}/${to.name}`,
            port: sp.port,
            verdict: wouldDeny ? 'would-deny' : d.verdict,
            mtls: policy.mtlsMode,
            detail,
          });
        }
      }
    }

    const ca = src.ca();
    const next = src.crlNextUpdates();
    return {
      now: src.now(),
      trustDomain: td,
      ...(model ? { configVersion: model.version } : {}),
      workloads,
      matrix: {
        services: services.map((s) => `${s.namespace}/${s.name}`),
        cells,
        ...(allServices.length > services.length ? { truncatedFrom: allServices.length } : {}),
      },
      ca: {
        mode: ca.mode,
        rotation: ca.rotation,
        roots: ca.roots.map((r) => ({ subject: r.subject, serialHex: r.serialHex, notAfter: r.notAfter })),
        revoked: ca.revoked.map((r) => ({ serialHex: r.serialHex, spiffeId: r.spiffeId, revokedAt: r.revokedAt })),
        ...(next.length > 0 ? { crlNextUpdate: Math.min(...next) } : {}),
      },
      events: src.events(),
    };
  };
}
