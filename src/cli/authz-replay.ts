// `meshpilot authz replay`: decides recorded requests again under a proposed config and lists those
// whose verdict would change. The recorded verdict is what the sidecar did (its RBAC detail in the
// log), so the answer is "what this config would change in production", not a diff of two configs.
import { portKind } from '../generate/index.js';
import { workloadPortFor, type MeshModel } from '../model/index.js';
import { compileInboundPolicy, evaluate, parseAccessLogLine, type RecordedRequest } from '../policy/index.js';

/** A recorded request whose verdict the proposed config changes. */
export interface VerdictChange {
  /** 1-based line number in the log. */
  readonly line: number;
  readonly request: RecordedRequest;
  readonly proposed: 'allow' | 'deny';
  /** `namespace/name rule N` of the deciding policy, or the evaluator's reason when none decided. */
  readonly decidedBy: string;
}

/** The outcome of a replay: changed verdicts, malformed lines and requests that could not be placed. */
export interface ReplayReport {
  readonly evaluated: number;
  readonly changed: readonly VerdictChange[];
  readonly malformed: readonly { readonly line: number; readonly error: string }[];
  /** Lines naming a workload or port the proposed config does not have. */
  readonly unplaced: readonly { readonly line: number; readonly error: string }[];
}

/** Evaluates each log line against the model's compiled inbound policy; never throws on bad input. */
export function replayAccessLog(
  model: MeshModel,
  lines: Iterable<string>,
  fetchJwks: (uri: string) => string | undefined = () => undefined,
): ReplayReport {
  const changed: VerdictChange[] = [];
  const malformed: { line: number; error: string }[] = [];
  const unplaced: { line: number; error: string }[] = [];
  // Compiling is the costly part and a log repeats the same few ports, so keep one per port.
  const compiled = new Map<string, ReturnType<typeof compileInboundPolicy> | string>();
  let evaluated = 0;
  let n = 0;
  for (const text of lines) {
    n++;
    if (text.trim() === '') continue;
    const parsed = parseAccessLogLine(text);
    if (!parsed.ok) {
      malformed.push({ line: n, error: parsed.error });
      continue;
    }
    const r = parsed.value;
    const key = `${r.destinationWorkload}:${r.destinationPort}`;
    let c = compiled.get(key);
    if (c === undefined) {
      const [ns, name] = r.destinationWorkload.split('/') as [string, string];
      const workload = model.workload(ns, name);
      const sp = workload
        ? model
            .servicesOf(workload)
            .flatMap((s) => s.ports)
            .find((p) => p.port === r.destinationPort)
        : undefined;
      if (!workload) c = `no WorkloadEntry ${r.destinationWorkload}`;
      else if (!sp) c = `workload ${r.destinationWorkload} has no Service port ${r.destinationPort}`;
      else c = compileInboundPolicy(model, workload, workloadPortFor(sp, workload), portKind(sp), fetchJwks);
      compiled.set(key, c);
    }
    if (typeof c === 'string') {
      unplaced.push({ line: n, error: c });
      continue;
    }
    evaluated++;
    // The log carries no token (recording bearer tokens would leak them), so policies on
    // request.auth.* see these requests as unauthenticated; the report says so.
    const d = evaluate(c, {
      port: r.destinationPort,
      method: r.method,
      path: r.path,
      headers: r.headers,
      ...(r.sourcePrincipal !== undefined ? { sourcePrincipal: r.sourcePrincipal } : {}),
      ...(r.sourceIp !== undefined ? { sourceIp: r.sourceIp } : {}),
      ...(r.remoteIp !== undefined ? { remoteIp: r.remoteIp } : {}),
      ...(r.destinationIp !== undefined ? { destinationIp: r.destinationIp } : {}),
      ...(r.host !== undefined ? { host: r.host } : {}),
    });
    if (d.verdict === r.recorded) continue;
    changed.push({
      line: n,
      request: r,
      proposed: d.verdict,
      decidedBy: d.policy !== undefined ? `${d.policy} rule ${d.rule}` : d.reason,
    });
  }
  return { evaluated, changed, malformed, unplaced };
}

/** Renders a replay report as the lines `authz replay` prints. */
export function formatReplayReport(r: ReplayReport): string {
  let out = '';
  for (const c of r.changed) {
    const q = c.request;
    out +=
      `line ${c.line}: ${q.recorded.toUpperCase()} -> ${c.proposed.toUpperCase()}  ` +
      `${q.sourcePrincipal ?? `plaintext ${q.sourceIp ?? '?'}`} -> ${q.destinationWorkload}:${q.destinationPort} ` +
      `${q.method} ${q.path}\n  decided by: ${c.decidedBy}\n`;
  }
  out += `${r.evaluated} evaluated, ${r.changed.length} would change, ${r.malformed.length} malformed, ${r.unplaced.length} not in the config\n`;
  for (const m of r.malformed) out += `  malformed line ${m.line}: ${m.error}\n`;
  for (const u of r.unplaced) out += `  line ${u.line}: ${u.error}\n`;
  return out;
}
