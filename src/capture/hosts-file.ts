// Service names for workloads in capture mode: `ip netns exec NS` bind-mounts /etc/netns/NS/hosts
// over /etc/hosts, so a hosts file per namespace gives unmodified apps Kubernetes-style DNS names.
import net from 'node:net';

/** A service as name resolution sees it: its name, namespace and virtual IP. */
export interface ServiceVip {
  readonly name: string;
  readonly namespace: string;
  readonly vip: string;
}

/**
 * Returns the hosts file for a workload in `namespace`: each service under its full name
 * (`name.ns.svc.<domainSuffix>`) and `name.ns`, plus the bare `name` for services in the same
 * namespace, as Kubernetes' search path would resolve them. Throws on a VIP that is not an IP (a bug).
 */
export function hostsFileFor(
  namespace: string,
  services: readonly ServiceVip[],
  domainSuffix: string,
  /** ServiceEntry hosts: each name as written, at its entry's VIP. */
  entries: readonly { readonly hosts: readonly string[]; readonly vip: string }[] = [],
): string {
  const lines = ['# written by meshpilot for namespace ' + namespace, '127.0.0.1 localhost', '::1 localhost ip6-localhost ip6-loopback'];
  const sorted = [...services].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  for (const s of sorted) {
    if (net.isIP(s.vip) === 0) throw new Error(`service ${s.name}.${s.namespace}: vip '${s.vip}' is not an IP address`);
    const names = [`${s.name}.${s.namespace}.svc.${domainSuffix}`, `${s.name}.${s.namespace}`];
    if (s.namespace === namespace) names.push(s.name);
    lines.push(`${s.vip} ${names.join(' ')}`);
  }
  for (const e of entries) {
    if (net.isIP(e.vip) === 0) throw new Error(`service entry ${e.hosts.join(',')}: vip '${e.vip}' is not an IP address`);
    lines.push(`${e.vip} ${e.hosts.join(' ')}`);
  }
  return lines.join('\n') + '\n';
}
