import { err, ok, type Result } from '../lib/index.js';
import type { CaptureSettings, Port } from './rules.js';

/** Envoy's user id, as Istio's: its own traffic is recognised by it. */
export const DEFAULT_PROXY_UID = 1337;
/** Envoy's virtual outbound listener, as Istio's. */
export const DEFAULT_OUTBOUND_PORT = 15001;
/** Envoy's virtual inbound listener, as Istio's. */
export const DEFAULT_INBOUND_PORT = 15006;
/** Envoy's admin port stays reachable without going through Envoy. */
export const DEFAULT_EXCLUDE_INBOUND = '15000';
/** The control plane's xDS/SDS/CSR port, so that a node agent reaches it directly. */
export const DEFAULT_EXCLUDE_OUTBOUND = '15012';

/** Capture settings as they arrive from flags, unchecked. */
export interface RawCaptureSettings {
  readonly proxyUid: string;
  readonly outboundPort: string;
  readonly inboundPort: string;
  readonly excludeInboundPorts: string;
  readonly excludeOutboundPorts: string;
}

/** Parses one port number, or says why it is not one. */
export function parsePort(s: string): Result<Port> {
  const t = s.trim();
  if (!/^\d+$/.test(t)) return err(`'${s}' is not a port number`);
  const n = Number(t);
  if (n < 1 || n > 65535) return err(`${t} is outside 1..65535`);
  return ok(n as Port);
}

/** Parses a comma-separated port list (empty means none), naming every bad entry. */
export function parsePortList(s: string): Result<Port[]> {
  if (s.trim() === '') return ok([]);
  const parts = s.split(',');
  const problems: string[] = [];
  const ports: Port[] = [];
  parts.forEach((p, i) => {
    const r = parsePort(p);
    if (r.ok) ports.push(r.value);
    else problems.push(`entry ${i + 1}: ${r.error}`);
  });
  if (problems.length > 0) return err(problems.join('; '));
  return ok([...new Set(ports)]);
}

// Linux uids are 32 bits; 4294967295 is (uid_t)-1, "no user".
const MAX_UID = 4_294_967_294;

function parseUid(s: string): Result<number> {
  const t = s.trim();
  if (!/^\d+$/.test(t)) return err(`'${s}' is not a numeric user id`);
  const n = Number(t);
  return n <= MAX_UID ? ok(n) : err(`${t} is not a valid user id (at most ${MAX_UID})`);
}

/** Validates raw settings into {@link CaptureSettings}, reporting every bad field at once. */
export function parseCaptureSettings(raw: RawCaptureSettings): Result<CaptureSettings> {
  const problems: string[] = [];
  const field = <T>(name: string, r: Result<T>): T | undefined => {
    if (r.ok) return r.value;
    problems.push(`${name}: ${r.error}`);
    return undefined;
  };
  const proxyUid = field('--proxy-uid', parseUid(raw.proxyUid));
  const outboundPort = field('--outbound-port', parsePort(raw.outboundPort));
  const inboundPort = field('--inbound-port', parsePort(raw.inboundPort));
  const excludeInboundPorts = field('--exclude-inbound-ports', parsePortList(raw.excludeInboundPorts));
  const excludeOutboundPorts = field('--exclude-outbound-ports', parsePortList(raw.excludeOutboundPorts));
  if (outboundPort !== undefined && outboundPort === inboundPort) problems.push('--outbound-port and --inbound-port must differ');
  if (
    problems.length > 0 ||
    proxyUid === undefined ||
    outboundPort === undefined ||
    inboundPort === undefined ||
    excludeInboundPorts === undefined ||
    excludeOutboundPorts === undefined
  ) {
    return err(problems.join('\n'));
  }
  return ok({ proxyUid, outboundPort, inboundPort, excludeInboundPorts, excludeOutboundPorts });
}
