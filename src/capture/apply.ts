// Applies and removes capture in a network namespace. Everything the host is asked goes through
// the CaptureHost seam, so refusals and roll-back are tested without root.
import { err, ok, type Result } from '../lib/index.js';
import {
  buildCaptureRules,
  captureStateFromSave,
  CAPTURE_CHAINS,
  JUMP_RULES,
  isClean,
  renderCleanup,
  renderRestore,
  type CaptureRules,
  type CaptureSettings,
  type CaptureState,
} from './rules.js';

/** Why capture refused or failed; the edges map each kind to a message and exit code. */
export type CaptureErrorKind =
  'no-privilege' | 'no-tools' | 'no-namespace' | 'bad-namespace' | 'no-proxy-user' | 'already-captured' | 'iptables-failed';

/** A refusal or failure with a message fit for an operator. */
export interface CaptureError {
  readonly kind: CaptureErrorKind;
  readonly message: string;
}

/** The outcome of running one command. */
export interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** What capture needs from the machine it runs on. */
export interface CaptureHost {
  /** Undefined when this process may change iptables (and enter namespaces), else why not. */
  privilegeProblem(needsNamespace: boolean): string | undefined;
  /** Which of these commands are not on PATH. */
  missingCommands(names: readonly string[]): string[];
  /** Whether `ip netns` knows this namespace. */
  namespaceExists(name: string): boolean;
  /** Whether a user with this id exists (passwd, via getent). */
  userExists(uid: number): boolean;
  /** Runs argv to completion with optional stdin. */
  run(argv: readonly string[], input?: string): RunResult;
}

/** Where capture applies: a named network namespace, or the one this process runs in. */
export interface CaptureTarget {
  readonly netns?: string;
}

const fail = (kind: CaptureErrorKind, message: string) => err<CaptureError>({ kind, message });

// Names `ip netns` accepts become files under /run/netns: no slashes, no dot names.
const NETNS_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

function inTarget(target: CaptureTarget, argv: readonly string[]): string[] {
  return target.netns === undefined ? [...argv] : ['ip', 'netns', 'exec', target.netns, ...argv];
}

function where(target: CaptureTarget): string {
  return target.netns === undefined ? 'the current network namespace' : `network namespace ${target.netns}`;
}

function checkTarget(host: CaptureHost, target: CaptureTarget): Result<true, CaptureError> {
  if (target.netns !== undefined && !NETNS_NAME.test(target.netns)) {
    return fail('bad-namespace', `--netns '${target.netns}' is not a valid network namespace name`);
  }
  const problem = host.privilegeProblem(target.netns !== undefined);
  if (problem !== undefined) return fail('no-privilege', problem);
  const missing = host.missingCommands([...(target.netns !== undefined ? ['ip'] : []), 'iptables-save', 'iptables-restore']);
  if (missing.length > 0) {
    return fail('no-tools', `capture needs ${missing.join(', ')} on PATH (Debian: apt-get install -y iptables iproute2)`);
  }
  if (target.netns !== undefined && !host.namespaceExists(target.netns)) {
    return fail('no-namespace', `network namespace ${target.netns} does not exist (see 'ip netns list')`);
  }
  return ok(true);
}

/** Reads which of capture's chains and jump rules are present in the target's nat table. */
export function readCaptureState(host: CaptureHost, target: CaptureTarget): Result<CaptureState, CaptureError> {
  const r = host.run(inTarget(target, ['iptables-save', '-t', 'nat']));
  if (r.status !== 0) return fail('iptables-failed', `iptables-save failed in ${where(target)}: ${r.stderr.trim() || `exit ${r.status}`}`);
  return ok(captureStateFromSave(r.stdout));
}

function restore(host: CaptureHost, target: CaptureTarget, script: string): RunResult {
  return host.run(inTarget(target, ['iptables-restore', '--noflush']), script);
}

/**
 * Adds the capture rules to the target in one iptables-restore transaction and checks they are all
 * there; on any failure it removes whatever of capture is present, so nothing is left half-applied.
 */
export function applyCapture(host: CaptureHost, target: CaptureTarget, settings: CaptureSettings): Result<CaptureRules, CaptureError> {
  const checked = checkTarget(host, target);
  if (!checked.ok) return checked;
  if (!host.userExists(settings.proxyUid)) {
    return fail(
      'no-proxy-user',
      `no user with id ${settings.proxyUid} exists: Envoy must run as that user so its own traffic is not captured ` +
        `(create it, e.g. 'useradd -u ${settings.proxyUid} -M -s /usr/sbin/nologin istio-proxy', or pass --proxy-uid)`,
    );
  }
  const before = readCaptureState(host, target);
  if (!before.ok) return before;
  if (!isClean(before.value)) {
    return fail(
      'already-captured',
      `capture is already applied in ${where(target)} (found ${describeState(before.value)}): run with --clean first`,
    );
  }
  const rules = buildCaptureRules(settings);
  const applied = restore(host, target, renderRestore(rules));
  // iptables-restore commits a table atomically, but a crash between steps or a concurrent writer
  // could still leave part of it: verify, and roll back whatever is there if it is not all there.
  const after = applied.status === 0 ? readCaptureState(host, target) : undefined;
  const complete =
    after?.ok === true && after.value.chains.length === CAPTURE_CHAINS.length && after.value.jumps.length === JUMP_RULES.length;
  if (complete) return ok(rules);
  const rolledBack = cleanCapture(host, target);
  const cause = applied.status !== 0 ? applied.stderr.trim() || `exit ${applied.status}` : 'the rules were not all present afterwards';
  const rollback = rolledBack.ok ? 'rolled back' : `roll-back failed too: ${rolledBack.error.message}`;
  return fail('iptables-failed', `applying capture in ${where(target)} failed (${cause}); ${rollback}`);
}

/** Removes exactly capture's jump rules and chains from the target; returns what it removed (nothing if clean). */
export function cleanCapture(host: CaptureHost, target: CaptureTarget): Result<CaptureState, CaptureError> {
  const checked = checkTarget(host, target);
  if (!checked.ok) return checked;
  const state = readCaptureState(host, target);
  if (!state.ok) return state;
  const script = renderCleanup(state.value);
  if (script === undefined) return ok(state.value);
  const r = restore(host, target, script);
  if (r.status !== 0)
    return fail('iptables-failed', `removing capture in ${where(target)} failed: ${r.stderr.trim() || `exit ${r.status}`}`);
  return ok(state.value);
}

/** Describes a capture state for messages, e.g. `chains ISTIO_INBOUND, ISTIO_OUTPUT and 1 jump rule`. */
export function describeState(s: CaptureState): string {
  const chains = s.chains.length > 0 ? `chains ${s.chains.join(', ')}` : 'no chains';
  return `${chains} and ${s.jumps.length} jump rule${s.jumps.length === 1 ? '' : 's'}`;
}
