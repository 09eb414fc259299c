// Where a jwksUri may point. The control plane fetches it from inside the mesh's network, so
// a policy author could otherwise make it read loopback admin ports, private services or the
// cloud metadata endpoint (SSRF). The host is resolved once, every address is checked, and the
// connection goes to a checked address, so a second DNS answer cannot move it (DNS rebinding).
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { err, ok, type Result } from '../lib/index.js';

/** What the operator allows jwksUri fetches to reach; both off by default. */
export interface JwksFetchPolicy {
  /** Allow `http://` jwksUris (local development): keys fetched in plaintext can be replaced on the way. */
  readonly allowPlainHttp: boolean;
  /** Allow hosts that resolve to loopback, private, link-local or other non-public addresses. */
  readonly allowPrivateHosts: boolean;
}

/** The default policy: HTTPS to public addresses only. */
export const DEFAULT_JWKS_FETCH_POLICY: JwksFetchPolicy = Object.freeze({ allowPlainHttp: false, allowPrivateHosts: false });

/** Resolves a host name to every address it has; injectable so tests never use real DNS. */
export type HostLookup = (host: string) => Promise<readonly { address: string; family: 4 | 6 }[]>;

/** A checked fetch target: the URL and the one address to connect to. */
export interface JwksTarget {
  readonly url: URL;
  readonly address: string;
  readonly family: 4 | 6;
}

// Non-public ranges (IANA special-purpose registries, RFC 6890), refused unless allowPrivateHosts.
// BlockList also matches IPv4-mapped IPv6 addresses (::ffff:10.0.0.1) against the IPv4 entries.
const NON_PUBLIC: readonly (readonly [string, number, 'ipv4' | 'ipv6', string])[] = [
  ['0.0.0.0', 8, 'ipv4', 'unspecified'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['10.0.0.0', 8, 'ipv4', 'private'],
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['169.254.0.0', 16, 'ipv4', 'link-local'],
  ['100.64.0.0', 10, 'ipv4', 'shared (carrier-grade NAT)'],
  ['192.0.0.0', 24, 'ipv4', 'IETF protocol assignments'],
  ['198.18.0.0', 15, 'ipv4', 'benchmarking'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['fec0::', 10, 'ipv6', 'site-local'],
  ['fc00::', 7, 'ipv6', 'unique local (private)'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];

// Cloud instance metadata services hand out credentials: never a key source, refused even when
// private hosts are allowed. (169.254.169.254: AWS, GCP, Azure, OpenStack; fd00:ec2::254: AWS
// IPv6; 100.100.100.200: Alibaba.)
const METADATA_ADDRESSES: readonly (readonly [string, 'ipv4' | 'ipv6'])[] = [
  ['169.254.169.254', 'ipv4'],
  ['fd00:ec2::254', 'ipv6'],
  ['100.100.100.200', 'ipv4'],
];
const METADATA_HOSTS = new Set(['metadata.google.internal', 'metadata', 'instance-data']);

const nonPublic = NON_PUBLIC.map(([net, prefix, type, why]) => {
  const list = new BlockList();
  list.addSubnet(net, prefix, type);
  return { list, why: `${why} (${net}/${prefix})` };
});
const metadata = new BlockList();
for (const [address, type] of METADATA_ADDRESSES) metadata.addAddress(address, type);

/** Why an address may not be fetched from under a policy, or undefined when it may. */
export function refusedAddress(address: string, policy: JwksFetchPolicy): string | undefined {
  const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  if (metadata.check(address, type)) return `${address} is a cloud metadata address`;
  if (policy.allowPrivateHosts) return undefined;
  const hit = nonPublic.find((r) => r.list.check(address, type));
  return hit ? `${address} is ${hit.why}; allowed only with allowPrivateJwksHosts` : undefined;
}

const systemLookup: HostLookup = async (host) =>
  (await dnsLookup(host, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

/**
 * Checks a jwksUri against the policy and resolves it to the address to connect to; every
 * refusal happens here, before any connection is made.
 */
export async function checkJwksTarget(
  uri: string,
  policy: JwksFetchPolicy,
  lookup: HostLookup = systemLookup,
): Promise<Result<JwksTarget>> {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return err(`not a URL: ${JSON.stringify(uri)}`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowPlainHttp))
    return err(`${url.protocol}// is not allowed: jwksUri must be https (plain http only with allowPlainHttpJwks)`);
  if (url.username !== '' || url.password !== '') return err('jwksUri must not carry credentials');
  // URL keeps IPv6 literals in brackets.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (METADATA_HOSTS.has(host.toLowerCase().replace(/\.$/, ''))) return err(`${host} is a cloud metadata host`);
  let addresses: readonly { address: string; family: 4 | 6 }[];
  if (isIP(host) !== 0) addresses = [{ address: host, family: isIP(host) === 6 ? 6 : 4 }];
  else {
    try {
      addresses = await lookup(host);
    } catch (e) {
      return err(`cannot resolve ${host}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  if (addresses.length === 0) return err(`${host} has no address`);
  // Every address is checked, not just the one used: a name answering with one public and one
  // private address is refused whichever would be picked.
  for (const a of addresses) {
    const why = refusedAddress(a.address, policy);
    if (why) return err(`${host} resolves to ${why}`);
  }
  return ok({ url, address: addresses[0]!.address, family: addresses[0]!.family });
}
