// The inbound access log meshpilot's sidecars can write, and its reader. One JSON object per line,
// carrying what the authorization evaluator needs to decide a request again, plus what Envoy did.
// The writer side is an Envoy `json_format` whose values are command operators (Envoy docs,
// "Access logging / Format rules"); the reader accepts exactly the keys of that format.
import { err, ok, type Result } from '../lib/index.js';
import { packAny, STDOUT_ACCESS_LOG_TYPE, StdoutAccessLog } from '../proto/index.js';

/** The HCM `access_log` entries for one workload's inbound port: Envoy's stdout logger in the replay format. */
export function inboundAccessLog(workload: string, headers: readonly string[] = []): Record<string, unknown>[] {
  return [
    {
      name: 'envoy.access_loggers.stdout',
      typedConfig: packAny(STDOUT_ACCESS_LOG_TYPE, StdoutAccessLog, {
        logFormat: { jsonFormat: accessLogJsonFormat(workload, headers) },
      }),
    },
  ];
}

/** A request as recorded by a sidecar's inbound HTTP connection manager. */
export interface RecordedRequest {
  /** `namespace/workload` of the receiving WorkloadEntry. */
  readonly destinationWorkload: string;
  /** The inbound listener port (the Service port). */
  readonly destinationPort: number;
  readonly destinationIp?: string;
  /** The caller certificate's URI SAN; undefined for a plaintext caller. */
  readonly sourcePrincipal?: string;
  readonly sourceIp?: string;
  readonly remoteIp?: string;
  readonly method: string;
  readonly path: string;
  readonly host?: string;
  readonly headers: readonly (readonly [string, string])[];
  /** What the sidecar decided: deny when its RBAC filter refused the request. */
  readonly recorded: 'allow' | 'deny';
  readonly responseCode?: number;
  readonly responseCodeDetails?: string;
}

/**
 * Returns the `json_format` for one workload's inbound HCM: fixed fields name the workload, the
 * others are Envoy command operators; `headers` lists the request headers policies read.
 */
export function accessLogJsonFormat(workload: string, headers: readonly string[] = []): Record<string, unknown> {
  const format: Record<string, unknown> = {
    destination_workload: workload,
    destination_port: '%DOWNSTREAM_LOCAL_PORT%',
    destination_ip: '%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%',
    source_principal: '%DOWNSTREAM_PEER_URI_SAN%',
    source_ip: '%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%',
    remote_ip: '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%',
    method: '%REQ(:METHOD)%',
    // The path as the client sent it: Envoy keeps the pre-normalization path in
    // x-envoy-original-path only when a route rewrites, so :PATH is what the RBAC filter saw.
    path: '%REQ(:PATH)%',
    host: '%REQ(:AUTHORITY)%',
    response_code: '%RESPONSE_CODE%',
    response_code_details: '%RESPONSE_CODE_DETAILS%',
  };
  if (headers.length > 0) format['headers'] = Object.fromEntries(headers.map((h) => [h.toLowerCase(), `%REQ(${h})%`]));
  return format;
}

const str = (o: Record<string, unknown>, k: string): string | undefined => {
  const v = o[k];
  // Envoy writes `-` (or null in json_format) for an operator with no value.
  return typeof v === 'string' && v !== '' && v !== '-' ? v : undefined;
};

/** Parses one access log line into a request, or says which field is missing or wrong. */
export function parseAccessLogLine(line: string): Result<RecordedRequest> {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return err('not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return err('not a JSON object');
  const o = raw as Record<string, unknown>;
  const workload = str(o, 'destination_workload');
  if (workload === undefined || !/^[^/]+\/[^/]+$/.test(workload)) return err('destination_workload: want namespace/workload');
  const port = Number(o['destination_port']);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return err('destination_port: want a port number');
  const method = str(o, 'method');
  if (method === undefined) return err('method: missing');
  const path = str(o, 'path');
  if (path === undefined || !path.startsWith('/')) return err('path: want an absolute path');
  const headers: [string, string][] = [];
  const h = o['headers'];
  if (h !== undefined && h !== null) {
    if (typeof h !== 'object' || Array.isArray(h)) return err('headers: want an object');
    for (const [k, v] of Object.entries(h as Record<string, unknown>)) {
      if (v === null || v === '-') continue;
      if (typeof v !== 'string') return err(`headers.${k}: want a string`);
      headers.push([k.toLowerCase(), v]);
    }
  }
  const code = Number(o['response_code']);
  const details = str(o, 'response_code_details');
  const optional = (k: string, field: string) => {
    const v = str(o, k);
    return v !== undefined ? { [field]: v } : {};
  };
  return ok({
    destinationWorkload: workload,
    destinationPort: port,
    method,
    path,
    headers,
    // Envoy's RBAC filter sets this detail when it refuses (rbac_filter.cc); any other 403 is not a policy verdict.
    recorded: details?.startsWith('rbac_access_denied') ? 'deny' : 'allow',
    ...(Number.isInteger(code) && code > 0 ? { responseCode: code } : {}),
    ...(details !== undefined ? { responseCodeDetails: details } : {}),
    ...optional('destination_ip', 'destinationIp'),
    ...optional('source_principal', 'sourcePrincipal'),
    ...optional('source_ip', 'sourceIp'),
    ...optional('remote_ip', 'remoteIp'),
    ...optional('host', 'host'),
  } as RecordedRequest);
}
