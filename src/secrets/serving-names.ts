// The names a client may dial the control plane by, for its serving certificate: clients that
// check host names (and any that dial an address, as the node agent's default 127.0.0.1 does)
// find the address they dialled among its SANs. Sidecars and the agent pin its SPIFFE ID instead.
import { isIP } from 'node:net';
import type { NetworkInterfaceInfo } from 'node:os';

/** The SANs a certificate needs for a server listening on `host`. */
export interface ListenSans {
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
}

/**
 * The IP SANs of the addresses a listener on `host` answers on: the address itself, or every
 * interface address when it is the unspecified one (0.0.0.0, ::); a host name becomes a DNS SAN.
 */
export function listenAddressSans(host: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): ListenSans {
  const bare = host.replace(/^\[|\]$/g, '');
  const family = isIP(bare);
  // A name that is not a valid DNS name (it resolved through /etc/hosts, say) is left out rather than failing the certificate.
  if (family === 0)
    return { dnsNames: /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(bare.toLowerCase()) ? [bare.toLowerCase()] : [], ipAddresses: [] };
  if (bare !== '0.0.0.0' && bare !== '::') return { dnsNames: [], ipAddresses: [bare] };
  // Listening on :: takes IPv4 too (dual stack); on 0.0.0.0 only IPv4.
  const all = Object.values(interfaces)
    .flat()
    .filter((i): i is NetworkInterfaceInfo => i !== undefined && (bare === '::' || i.family === 'IPv4'))
    .map((i) => i.address)
    .filter((a) => !a.includes('%'));
  return { dnsNames: [], ipAddresses: [...new Set(all)] };
}
