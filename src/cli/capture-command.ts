import type { Command } from 'commander';
import {
  applyCapture,
  buildCaptureRules,
  cleanCapture,
  DEFAULT_EXCLUDE_INBOUND,
  DEFAULT_EXCLUDE_OUTBOUND,
  DEFAULT_INBOUND_PORT,
  DEFAULT_OUTBOUND_PORT,
  DEFAULT_PROXY_UID,
  describeState,
  isClean,
  parseCaptureSettings,
  readCaptureState,
  renderCleanup,
  renderRestore,
  systemCaptureHost,
  type CaptureHost,
  type CaptureTarget,
} from '../capture/index.js';

interface CaptureFlags {
  netns?: string;
  proxyUid: string;
  outboundPort: string;
  inboundPort: string;
  excludeInboundPorts: string;
  excludeOutboundPorts: string;
  dryRun?: boolean;
  clean?: boolean;
}

/** Adds `meshpilot capture`: writes (or removes) the iptables rules that send a workload's TCP through its Envoy. */
export function registerCaptureCommand(program: Command, host: CaptureHost = systemCaptureHost()): void {
  program
    .command('capture')
    .description(
      "redirect a workload's TCP through its Envoy with iptables nat rules (Istio's chains): outbound to the outbound port, " +
        "inbound to the inbound port, except Envoy's own traffic, loopback and excluded ports",
    )
    .option('--netns <name>', "apply inside this network namespace ('ip netns' name); default: the current one")
    .option('--proxy-uid <uid>', "Envoy's user id; its own connections are not captured", String(DEFAULT_PROXY_UID))
    .option('--outbound-port <port>', "Envoy's outbound capture listener", String(DEFAULT_OUTBOUND_PORT))
    .option('--inbound-port <port>', "Envoy's inbound capture listener", String(DEFAULT_INBOUND_PORT))
    .option('--exclude-inbound-ports <ports>', 'comma-separated inbound ports not captured (empty for none)', DEFAULT_EXCLUDE_INBOUND)
    .option('--exclude-outbound-ports <ports>', 'comma-separated outbound ports not captured (empty for none)', DEFAULT_EXCLUDE_OUTBOUND)
    .option('--dry-run', 'print the iptables-restore input instead of applying it')
    .option('--clean', 'remove the chains and jump rules capture added, and nothing else')
    .action(function (this: Command, o: CaptureFlags) {
      const target: CaptureTarget = { netns: o.netns };
      const where = o.netns === undefined ? 'the current network namespace' : `network namespace ${o.netns}`;
      if (o.clean === true) {
        if (o.dryRun === true) {
          const state = readCaptureState(host, target);
          if (!state.ok) this.error(`meshpilot capture: ${state.error.message}`, { exitCode: 1 });
          process.stdout.write(renderCleanup(state.value) ?? `# nothing of capture in ${where}\n`);
          return;
        }
        const removed = cleanCapture(host, target);
        if (!removed.ok) this.error(`meshpilot capture: ${removed.error.message}`, { exitCode: 1 });
        process.stdout.write(
          isClean(removed.value) ? `nothing of capture in ${where}\n` : `removed ${describeState(removed.value)} from ${where}\n`,
        );
        return;
      }
      const settings = parseCaptureSettings(o);
      if (!settings.ok) this.error(`meshpilot capture: ${settings.error}`, { exitCode: 1 });
      if (o.dryRun === true) {
        process.stdout.write(renderRestore(buildCaptureRules(settings.value)));
        return;
      }
      const applied = applyCapture(host, target, settings.value);
      if (!applied.ok) this.error(`meshpilot capture: ${applied.error.message}`, { exitCode: 1 });
      const s = settings.value;
      process.stdout.write(
        `capture applied in ${where}: ${applied.value.rules.length} rules; outbound TCP to ${s.outboundPort}, ` +
          `inbound TCP to ${s.inboundPort}, uid ${s.proxyUid} exempt\n`,
      );
    });
}
