// Transparent capture: the iptables rules that send a workload's TCP through its Envoy, and the
// per-namespace hosts files that give unmodified apps service names.
export { buildCaptureRules, renderRestore, renderCleanup, captureStateFromSave, isClean, ruleLine } from './rules.js';
export { CAPTURE_CHAINS, JUMP_RULES, INBOUND_PASSTHROUGH_SOURCE } from './rules.js';
export type { CaptureSettings, CaptureRules, CaptureState, NatRule, Port, CaptureChain } from './rules.js';
export { parseCaptureSettings, parsePort, parsePortList } from './settings.js';
export {
  DEFAULT_PROXY_UID,
  DEFAULT_OUTBOUND_PORT,
  DEFAULT_INBOUND_PORT,
  DEFAULT_EXCLUDE_INBOUND,
  DEFAULT_EXCLUDE_OUTBOUND,
} from './settings.js';
export type { RawCaptureSettings } from './settings.js';
export { applyCapture, cleanCapture, readCaptureState, describeState } from './apply.js';
export type { CaptureHost, CaptureTarget, CaptureError, CaptureErrorKind, RunResult } from './apply.js';
export { systemCaptureHost } from './system-host.js';
export { hostsFileFor } from './hosts-file.js';
export type { ServiceVip } from './hosts-file.js';
