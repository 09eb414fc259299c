// Proof of mTLS per service pair: for every client workload and service port, what secure naming
// expects (the service's service accounts), what the client's CDS cluster actually carries (its
// UpstreamTlsContext SAN matcher, decoded from the snapshot) and whether the client ACKed it, and
// the server side: its PeerAuthentication mode, its current SVID and whether it ACKed that SDS.
// Any disagreement between expected, pushed and ACKed is listed as a problem of the pair.
import { Any, Cluster, UpstreamTlsContext } from '../proto/index.js';

/** A client workload as the push controller admitted it (one of its proxies). */
export interface ReportClient {
  readonly workload: string;
  readonly nodeId: string;
}

/** One service port as the config defines it, with what secure naming expects of its servers. */
export interface ReportService {
  /** `<name>.<namespace>.svc.<domain>`. */
  readonly host: string;
  readonly port: number;
  /** The client-side cluster name, `outbound|<port>||<host>`. */
  readonly cluster: string;
  readonly expectedIds: readonly string[];
  readonly servers: readonly ReportServer[];
}

/** One workload behind a service port. */
export interface ReportServer {
  readonly workload: string;
  /** The PeerAuthentication mode of its inbound port. */
  readonly mode: 'STRICT' | 'PERMISSIVE' | 'DISABLE';
  /** Its sidecar's node id, if one is connected. */
  readonly nodeId?: string;
  /** Whether the config says it runs a sidecar (auto mTLS sends it TLS only then). */
  readonly sidecar: boolean;
}

/** What was pushed to one client for one cluster. */
export interface PushedCluster {
  readonly tls: boolean;
  /** Auto mTLS over mixed endpoints: TLS toward sidecars, plaintext toward the rest (transport_socket_matches). */
  readonly mixed?: boolean;
  /** TLS without the mesh certificate: a DestinationRule's SIMPLE or MUTUAL origination. */
  readonly origination?: boolean;
  readonly sans: readonly string[];
}

/** The narrow views the report reads; main wires them to the model, snapshots, tracker and SVID store. */
export interface MtlsReportDeps {
  clients(): readonly ReportClient[];
  services(): readonly ReportService[];
  /** The cluster in the client's current snapshot, or undefined when it has none of that name. */
  pushedCluster(nodeId: string, cluster: string): PushedCluster | undefined;
  /** The version of a type in the proxy's current snapshot (`cds` or `sds`). */
  currentVersion(nodeId: string, type: 'cds' | 'sds'): string | undefined;
  /** The version of a type the proxy last ACKed. */
  ackedVersion(nodeId: string, type: 'cds' | 'sds'): string | undefined;
  svidOf(workload: string): { readonly serialHex: string; readonly notAfter: number } | undefined;
  now(): number;
}

/** One client → service port row. */
export interface MtlsPair {
  readonly client: string;
  readonly service: string;
  readonly port: number;
  /** Client TLS mode: `auto` (mTLS toward sidecars) as pushed, or `plaintext`; `none` when no cluster was pushed. */
  readonly clientTls: 'auto mTLS' | 'auto mTLS, plaintext to endpoints without a sidecar' | 'TLS origination' | 'plaintext' | 'none';
  readonly serverModes: readonly string[];
  readonly expectedIds: readonly string[];
  readonly pushedSans: readonly string[];
  readonly cdsAcked: boolean;
  readonly servers: readonly {
    readonly workload: string;
    readonly serial?: string;
    readonly notAfter?: string;
    readonly sdsAcked: boolean;
  }[];
  readonly problems: readonly string[];
}

/** Decodes a CDS resource (a packed Any) into its TLS mode and URI SAN matchers. */
export function decodeClusterTls(anyBytes: Uint8Array): PushedCluster {
  const cluster = Cluster.decode(Any.decode(anyBytes).value);
  const isTls = (t: { typeUrl: string } | undefined) => t?.typeUrl.endsWith('UpstreamTlsContext') ?? false;
  const matched = cluster.transportSocketMatches.find((m) => isTls(m.transportSocket?.typedConfig));
  const ts = matched ? matched.transportSocket?.typedConfig : cluster.transportSocket?.typedConfig;
  if (!ts || !isTls(ts)) return { tls: false, sans: [] };
  const tls = UpstreamTlsContext.decode(ts.value);
  const ctx = tls.commonTlsContext?.combinedValidationContext?.defaultValidationContext;
  const sans = (ctx?.matchTypedSubjectAltNames ?? []).flatMap((m) => (m.matcher?.exact !== undefined ? [m.matcher.exact] : []));
  // Mesh mTLS validates with the mesh roots (ROOTCA) in a combined context; origination with a file CA, or not at all.
  if (!tls.commonTlsContext?.combinedValidationContext) return { tls: true, sans: [], origination: true };
  return { tls: true, sans, ...(matched ? { mixed: true } : {}) };
}

/** Builds the report, optionally for one client workload (`from`) or service host (`to`, a prefix of the host). */
export function buildMtlsReport(deps: MtlsReportDeps, filter: { from?: string; to?: string } = {}): MtlsPair[] {
  const rows: MtlsPair[] = [];
  const clients = deps.clients().filter((c) => filter.from === undefined || c.workload === filter.from);
  const services = deps.services().filter((s) => filter.to === undefined || s.host === filter.to || s.host.startsWith(`${filter.to}.`));
  for (const c of clients) {
    const cdsAcked =
      deps.currentVersion(c.nodeId, 'cds') !== undefined && deps.currentVersion(c.nodeId, 'cds') === deps.ackedVersion(c.nodeId, 'cds');
    for (const s of services) {
      if (s.servers.some((w) => w.workload === c.workload)) continue; // a workload calling itself is not a pair
      const pushed = deps.pushedCluster(c.nodeId, s.cluster);
      const problems: string[] = [];
      const expected = [...s.expectedIds].sort();
      const sans = [...(pushed?.sans ?? [])].sort();
      if (!pushed) problems.push(`no cluster ${s.cluster} pushed`);
      else if (!pushed.tls && s.servers.some((w) => w.mode === 'STRICT')) problems.push('plaintext toward a STRICT server');
      else if (pushed.origination && s.servers.some((w) => w.mode === 'STRICT'))
        problems.push('TLS without the mesh certificate (DestinationRule SIMPLE or MUTUAL) toward a STRICT server');
      else if (pushed.tls && sans.join(',') !== expected.join(','))
        problems.push(`pushed SANs [${sans.join(', ')}] differ from expected [${expected.join(', ')}]`);
      if (pushed?.mixed)
        for (const w of s.servers)
          if (!w.sidecar && w.mode === 'STRICT') problems.push(`plaintext toward ${w.workload} (no sidecar label) whose port is STRICT`);
      if (pushed && !cdsAcked) problems.push('client has not ACKed its current CDS');
      const servers = s.servers.map((w) => {
        const svid = deps.svidOf(w.workload);
        const sdsAcked =
          w.nodeId !== undefined &&
          deps.currentVersion(w.nodeId, 'sds') !== undefined &&
          deps.currentVersion(w.nodeId, 'sds') === deps.ackedVersion(w.nodeId, 'sds');
        if (w.nodeId === undefined) problems.push(`server ${w.workload} has no connected sidecar`);
        else if (!svid || svid.notAfter <= deps.now()) problems.push(`server ${w.workload} has no current SVID`);
        else if (!sdsAcked) problems.push(`server ${w.workload} has not ACKed its current SDS`);
        return {
          workload: w.workload,
          ...(svid ? { serial: svid.serialHex, notAfter: new Date(svid.notAfter).toISOString() } : {}),
          sdsAcked,
        };
      });
      rows.push({
        client: c.workload,
        service: s.host,
        port: s.port,
        clientTls: !pushed
          ? 'none'
          : pushed.mixed
            ? 'auto mTLS, plaintext to endpoints without a sidecar'
            : pushed.origination
              ? 'TLS origination'
              : pushed.tls
                ? 'auto mTLS'
                : 'plaintext',
        serverModes: [...new Set(s.servers.map((w) => w.mode))],
        expectedIds: expected,
        pushedSans: sans,
        cdsAcked,
        servers,
        problems,
      });
    }
  }
  return rows;
}

/** Renders the report as the table `meshpilot mtls report` prints, each problem on its own line. */
export function formatMtlsReport(rows: readonly MtlsPair[]): string {
  let out = '';
  for (const r of rows) {
    out += `${r.problems.length === 0 ? 'OK  ' : 'FAIL'} ${r.client} -> ${r.service}:${r.port}\n`;
    out += `     client: ${r.clientTls} (as pushed), CDS ${r.cdsAcked ? 'ACKed' : 'not ACKed'}\n`;
    out += `     server mode: ${r.serverModes.join(', ') || 'no servers'}\n`;
    out += `     expected: ${r.expectedIds.join(', ') || '-'}\n`;
    out += `     pushed:   ${r.pushedSans.join(', ') || '-'}\n`;
    for (const s of r.servers)
      out += `     server ${s.workload}: SVID ${s.serial ?? 'none'}${s.notAfter ? ` until ${s.notAfter}` : ''}, SDS ${s.sdsAcked ? 'ACKed' : 'not ACKed'}\n`;
    for (const p of r.problems) out += `     ! ${p}\n`;
  }
  const bad = rows.filter((r) => r.problems.length > 0).length;
  out += `${rows.length} pairs, ${bad} flagged\n`;
  return out;
}
