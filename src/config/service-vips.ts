// Service virtual IPs for capture mode: a Service's own spec.clusterIP, or one derived from its
// namespace and name inside MeshConfig serviceCidr. Derivation needs no state: the same config gives
// the same VIPs on every start and on every replica. Each service starts at a hash of its name and
// probes linearly to the next free address, services taken in sorted order, so a VIP moves only
// when a service sorted before it collided with its slot.
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { err, ok, type Result } from '../lib/index.js';
import type { Service, SourceRef, WorkloadEntry } from '../model/index.js';

/** An IPv4 range as numbers: the network address and the prefix length. */
export interface Ipv4Cidr {
  readonly base: number;
  readonly bits: number;
}

const toNumber = (ip: string): number => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const toIp = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

/** Parses `a.b.c.d/n` (IPv4 only) into its network address and prefix; host bits must be zero. */
export function parseIpv4Cidr(s: string): Result<Ipv4Cidr> {
  const [ip, len, extra] = s.split('/');
  if (extra !== undefined || ip === undefined || len === undefined || !isIPv4(ip) || !/^\d{1,2}$/.test(len))
    return err(`'${s}' is not an IPv4 CIDR such as 10.96.0.0/16`);
  const bits = Number(len);
  if (bits > 32) return err(`'${s}': prefix length ${bits} is above 32`);
  const base = toNumber(ip);
  const size = 2 ** (32 - bits);
  if (base % size !== 0) return err(`'${s}' has host bits set; write ${toIp(base - (base % size))}/${bits}`);
  return ok({ base, bits });
}

/** Whether an IPv4 literal lies inside the range. */
export function cidrContains(c: Ipv4Cidr, ip: string): boolean {
  if (!isIPv4(ip)) return false;
  const n = toNumber(ip);
  return n >= c.base && n < c.base + 2 ** (32 - c.bits);
}

/** A problem with one service's address, pointing at the field. */
export interface VipProblem {
  readonly origin: SourceRef | undefined;
  readonly path: string;
  readonly message: string;
}

function startSlot(service: Service, slots: number): number {
  const h = createHash('sha256').update(`${service.namespace}/${service.name}`).digest();
  return h.readUInt32BE(0) % slots;
}

/**
 * Returns the services with `vip` set, and every problem: a clusterIP outside the range, one that
 * another service or a workload already holds, or a range too small for every service.
 */
export function assignServiceVips(
  services: readonly Service[],
  workloads: readonly Pick<WorkloadEntry, 'address' | 'namespace' | 'name'>[],
  cidrText: string,
  cidrOrigin: SourceRef | undefined,
): { services: Service[]; problems: VipProblem[] } {
  const problems: VipProblem[] = [];
  const cidr = parseIpv4Cidr(cidrText);
  if (!cidr.ok) return { services: [...services], problems: [{ origin: cidrOrigin, path: 'spec.serviceCidr', message: cidr.error }] };
  const held = new Map<string, string>();
  for (const w of workloads) if (w.address !== '') held.set(w.address, `workload ${w.namespace}/${w.name}`);
  const sorted = [...services].sort((a, b) => (a.namespace + '/' + a.name < b.namespace + '/' + b.name ? -1 : 1));
  const vips = new Map<Service, string>();
  for (const s of sorted) {
    if (s.clusterIP === undefined) continue;
    const owner = `service ${s.namespace}/${s.name}`;
    const at = { origin: s.origin, path: 'spec.clusterIP' };
    if (!cidrContains(cidr.value, s.clusterIP)) {
      problems.push({ ...at, message: `${s.clusterIP} is outside serviceCidr ${cidrText}` });
      continue;
    }
    const holder = held.get(s.clusterIP);
    if (holder !== undefined) {
      problems.push({ ...at, message: `${s.clusterIP} is already the address of ${holder}` });
      continue;
    }
    held.set(s.clusterIP, owner);
    vips.set(s, s.clusterIP);
  }
  const size = 2 ** (32 - cidr.value.bits);
  // The network and broadcast addresses of a range are not handed out, as Kubernetes does not.
  const first = size > 2 ? cidr.value.base + 1 : cidr.value.base;
  const slots = size > 2 ? size - 2 : size;
  for (const s of sorted) {
    if (s.clusterIP !== undefined) continue;
    const start = startSlot(s, slots);
    let vip: string | undefined;
    for (let i = 0; i < slots; i++) {
      const candidate = toIp(first + ((start + i) % slots));
      if (!held.has(candidate)) {
        vip = candidate;
        break;
      }
    }
    if (vip === undefined) {
      problems.push({
        origin: cidrOrigin ?? s.origin,
        path: cidrOrigin ? 'spec.serviceCidr' : 'metadata.name',
        message: `serviceCidr ${cidrText} has no free address left for service ${s.namespace}/${s.name}`,
      });
      continue;
    }
    held.set(vip, `service ${s.namespace}/${s.name}`);
    vips.set(s, vip);
  }
  return { services: services.map((s) => (vips.has(s) ? { ...s, vip: vips.get(s) } : s)), problems };
}
