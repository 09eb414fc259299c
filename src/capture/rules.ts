// The iptables nat rules that send a workload's TCP through its Envoy, built as data so that the
// CLI, the dry run, the clean-up and the tests all read one definition. The shape follows Istio's
// istio-iptables (same chain names, same order of exceptions) so that Istio users recognise it.

/** The chains capture owns, in the order they are created. */
export const CAPTURE_CHAINS = ['ISTIO_INBOUND', 'ISTIO_REDIRECT', 'ISTIO_IN_REDIRECT', 'ISTIO_OUTPUT'] as const;

/** One of the chains capture owns. */
export type CaptureChain = (typeof CAPTURE_CHAINS)[number];

/** A TCP port number, 1..65535, checked once at the edge. */
export type Port = number & { readonly __brand: 'Port' };

/** What capture redirects where; every field is already validated. */
export interface CaptureSettings {
  /** Envoy's user id: its own connections are never captured (`-m owner --uid-owner`). */
  readonly proxyUid: number;
  /** Envoy's virtual outbound listener (Istio: 15001). */
  readonly outboundPort: Port;
  /** Envoy's virtual inbound listener (Istio: 15006). */
  readonly inboundPort: Port;
  /** Inbound destination ports left alone (Envoy admin, health checks, ...). */
  readonly excludeInboundPorts: readonly Port[];
  /** Outbound destination ports left alone (the control plane's 15012, ...). */
  readonly excludeOutboundPorts: readonly Port[];
}

/** One rule: the chain it goes in and the match and target arguments as iptables takes them. */
export interface NatRule {
  readonly chain: string;
  readonly args: readonly string[];
}

/** The whole capture as data: the chains to create and the rules, jump rules last. */
export interface CaptureRules {
  readonly chains: readonly CaptureChain[];
  readonly rules: readonly NatRule[];
}

/**
 * The source address Envoy binds for connections to the local app (Istio's inbound passthrough
 * address): such connections go over lo from uid 1337 and would otherwise be sent back to the
 * inbound port, so they are let through first.
 */
export const INBOUND_PASSTHROUGH_SOURCE = '127.0.0.6';

/** The jump rules from the built-in chains: the only rules capture adds outside its own chains. */
export const JUMP_RULES: readonly NatRule[] = [
  { chain: 'PREROUTING', args: ['-p', 'tcp', '-j', 'ISTIO_INBOUND'] },
  { chain: 'OUTPUT', args: ['-p', 'tcp', '-j', 'ISTIO_OUTPUT'] },
];

/** Returns the nat rules that capture a workload's inbound and outbound TCP for its Envoy. */
export function buildCaptureRules(s: CaptureSettings): CaptureRules {
  const uid = String(s.proxyUid);
  const rule = (chain: CaptureChain, ...args: string[]): NatRule => ({ chain, args });
  const rules: NatRule[] = [
    // Inbound: everything that arrives for this namespace goes to the inbound listener,
    // except the ports that must answer without Envoy.
    ...s.excludeInboundPorts.map((p) => rule('ISTIO_INBOUND', '-p', 'tcp', '--dport', String(p), '-j', 'RETURN')),
    rule('ISTIO_INBOUND', '-p', 'tcp', '-j', 'ISTIO_IN_REDIRECT'),
    rule('ISTIO_REDIRECT', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(s.outboundPort)),
    rule('ISTIO_IN_REDIRECT', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(s.inboundPort)),
    // Outbound, in Istio's order: excluded ports first, so nothing below can capture them.
    ...s.excludeOutboundPorts.map((p) => rule('ISTIO_OUTPUT', '-p', 'tcp', '--dport', String(p), '-j', 'RETURN')),
    // Envoy forwarding inbound traffic to the local app binds this source: let it reach the app.
    rule('ISTIO_OUTPUT', '-o', 'lo', '-s', `${INBOUND_PASSTHROUGH_SOURCE}/32`, '-j', 'RETURN'),
    // Envoy calling a service that resolves to this very workload: treat it as inbound.
    rule('ISTIO_OUTPUT', '-o', 'lo', '!', '-d', '127.0.0.1/32', '-m', 'owner', '--uid-owner', uid, '-j', 'ISTIO_IN_REDIRECT'),
    // The app talking to itself over lo is not mesh traffic.
    rule('ISTIO_OUTPUT', '-o', 'lo', '-m', 'owner', '!', '--uid-owner', uid, '-j', 'RETURN'),
    // Envoy's own upstream connections: capturing them would loop back into Envoy.
    rule('ISTIO_OUTPUT', '-m', 'owner', '--uid-owner', uid, '-j', 'RETURN'),
    rule('ISTIO_OUTPUT', '-d', '127.0.0.1/32', '-j', 'RETURN'),
    rule('ISTIO_OUTPUT', '-j', 'ISTIO_REDIRECT'),
    ...JUMP_RULES,
  ];
  return { chains: CAPTURE_CHAINS, rules };
}

/** Formats one rule as an `-A` line, as iptables-save prints it. */
export function ruleLine(r: NatRule, verb: '-A' | '-D' = '-A'): string {
  return [verb, r.chain, ...r.args].join(' ');
}

/** Returns the `iptables-restore --noflush` input that adds the rules in one transaction. */
export function renderRestore(rules: CaptureRules): string {
  return ['*nat', ...rules.chains.map((c) => `:${c} - [0:0]`), ...rules.rules.map((r) => ruleLine(r)), 'COMMIT', ''].join('\n');
}

/** What capture finds of itself in a namespace's nat table. */
export interface CaptureState {
  readonly chains: readonly CaptureChain[];
  /** Jump rules found, once per copy present. */
  readonly jumps: readonly NatRule[];
}

/** Reads `iptables-save -t nat` output and returns which of capture's chains and jump rules are present. */
export function captureStateFromSave(save: string): CaptureState {
  const lines = save.split('\n').map((l) => l.trim());
  const chains = CAPTURE_CHAINS.filter((c) => lines.some((l) => l.startsWith(`:${c} `)));
  const jumps = lines.flatMap((l) => JUMP_RULES.filter((j) => l === ruleLine(j)));
  return { chains, jumps };
}

/** True when no trace of capture is left. */
export const isClean = (s: CaptureState): boolean => s.chains.length === 0 && s.jumps.length === 0;

/**
 * Returns the `iptables-restore --noflush` input that removes exactly what is present of capture:
 * its jump rules, then its chains (flushed first, because they jump to one another), or undefined
 * when nothing is there.
 */
export function renderCleanup(state: CaptureState): string | undefined {
  if (isClean(state)) return undefined;
  return [
    '*nat',
    ...state.jumps.map((j) => ruleLine(j, '-D')),
    ...state.chains.map((c) => `-F ${c}`),
    ...state.chains.map((c) => `-X ${c}`),
    'COMMIT',
    '',
  ].join('\n');
}
