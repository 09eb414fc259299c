// IP address SANs are written in their network form (RFC 5280 4.2.1.6: 4 octets for IPv4,
// 16 for IPv6). node:net says whether a string is an address but has no parser to bytes.
import { isIPv4, isIPv6 } from 'node:net';

/** The 4- or 16-byte form of an IPv4 or IPv6 address (zone ids refused), or undefined when it is not one. */
export function ipAddressBytes(text: string): Buffer | undefined {
  if (isIPv4(text)) return Buffer.from(text.split('.').map(Number));
  if (!isIPv6(text) || text.includes('%')) return undefined;
  // A trailing dotted quad (::ffff:1.2.3.4) stands for the last two groups.
  let s = text;
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (quad) {
    const b = quad[1]!.split('.').map(Number);
    s = s.slice(0, -quad[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const groups = (p: string | undefined) => (p ? p.split(':') : []);
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}
