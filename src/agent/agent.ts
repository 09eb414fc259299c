// The node agent (DESIGN.md scenario 6): on a VM it makes the workload's private key
// locally, asks the control plane's CSR service for an SVID (first with its token, then
// with its current SVID as TLS client certificate), serves SVID and trust bundle to the
// local Envoy over SDS on a Unix socket, renews at a fraction of the lifetime with jitter,
// and retries with capped exponential backoff while the CA is unreachable. It keeps
// serving the current SVID while it is valid, and never one that has expired.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { generateKeyPair, type KeyPair } from '../ca/index.js';
import { makeCsr } from '../csr/index.js';
import { trustDomainOf, type SpiffeId } from '../identity/index.js';
import { err, ok, type Clock, type Result } from '../lib/index.js';
import type { Logger } from '../observability/index.js';
import { renewalTime, type RenewalPolicy, type Timers } from '../secrets/index.js';
import type { XdsHooks } from '../xds/index.js';
import { backoffDelay, defaultBackoff, type BackoffPolicy } from './backoff.js';
import { requestCertificate, type AgentCredential, type CaEndpoint, type CallFailure } from './ca-client.js';
import { acceptChain, type AgentSvid } from './issued.js';
import { createFileSink } from './file-sink.js';
import { startSdsServer, type SdsServer } from './sds.js';

/** What the agent reports about itself (for tests and a status endpoint). */
export interface AgentStatus {
  /** The SVID served now, if any (none before the first issuance and after an expiry). */
  readonly svid?: Omit<AgentSvid, 'keyPem'>;
  /** Consecutive failed attempts since the last success. */
  readonly failures: number;
  /** When the next attempt is due (clock time), if one is scheduled. */
  readonly nextAttemptAt?: number;
}

/** A running node agent. */
export interface NodeAgent {
  /** Opens the SDS socket and makes the first certificate request (retried in the background if it fails). */
  start(): Promise<void>;
  /** Stops renewing, closes the SDS socket and removes it. */
  stop(): Promise<void>;
  status(): AgentStatus;
  /** Subscribes to served-SVID changes (issued, renewed, expired); returns the unsubscribe. */
  onChange(cb: (status: AgentStatus) => void): () => void;
}

/** Renew at half the lifetime, brought forward by up to a tenth, as Istio's agent does. */
export const defaultAgentRenewal: RenewalPolicy = { atFraction: 0.5, jitterFraction: 0.1 };

/** Creates a node agent; nothing happens until `start()`. */
export function createNodeAgent(deps: {
  /** host:port of the control plane's TLS port (xDS, SDS and CSR). */
  caAddress: string;
  /** The mesh root(s), PEM: the control plane's serving certificate must chain to one. */
  caRootPem: string;
  /** The control plane's SPIFFE ID: its certificate must carry exactly this URI SAN (host names are not checked). */
  controlPlaneId: string;
  /** TLS server name (SNI) and authority to send, e.g. 'meshpilot.istio-system.svc'; the certificate is checked by SPIFFE ID. */
  serverName?: string;
  /** The first credential: a token file (re-read on every use, so it can be rotated on disk). */
  credential: { tokenFile?: string };
  /** The identity the agent asks for; the CSR service checks it against the credential. */
  spiffeId: SpiffeId;
  /** Where the SVID goes: an SDS Unix socket, or (certDir) files Envoy reads through file-based SDS. Exactly one. */
  sdsSocketPath?: string;
  certDir?: string;
  /** Requested SVID lifetime; the CA's default when absent (the CA clamps it to its maximum). */
  ttlMs?: number;
  renewal?: RenewalPolicy;
  backoff?: BackoffPolicy;
  /** Per-call deadline (default 10 s). */
  requestTimeoutMs?: number;
  clock: Clock;
  timers: Timers;
  random?: () => number;
  /** Key source (default: a fresh ECDSA P-256 key per certificate). */
  generateKey?: () => KeyPair;
  readFile?: (path: string) => string;
  log: Logger;
  /** SDS stream events (for tests). */
  sdsHooks?: XdsHooks;
}): NodeAgent {
  const log = deps.log.child({ module: 'agent', spiffeId: deps.spiffeId });
  const random = deps.random ?? Math.random;
  const renewal = deps.renewal ?? defaultAgentRenewal;
  const backoff = deps.backoff ?? defaultBackoff;
  const newKey = deps.generateKey ?? (() => generateKeyPair('ec-p256'));
  const readFile = deps.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const ca: CaEndpoint = {
    address: deps.caAddress,
    rootPem: deps.caRootPem,
    controlPlaneId: deps.controlPlaneId,
    serverName: deps.serverName,
  };

  let sds: SdsServer | undefined;
  let current: AgentSvid | undefined;
  let lastRoots = '';
  let failures = 0;
  let attemptTimer: unknown;
  let nextAttemptAt: number | undefined;
  let expiryTimer: unknown;
  let inFlight = false;
  let stopped = false;
  const listeners = new Set<(s: AgentStatus) => void>();

  const status = (): AgentStatus => {
    const svid = current ? (({ keyPem: _, ...rest }) => rest)(current) : undefined;
    return { ...(svid ? { svid } : {}), failures, ...(nextAttemptAt !== undefined ? { nextAttemptAt } : {}) };
  };
  const changed = () => {
    const s = status();
    for (const l of listeners) l(s);
  };
  const valid = (svid: AgentSvid | undefined): svid is AgentSvid => svid !== undefined && deps.clock.now() < svid.notAfter;

  function schedule(delayMs: number): void {
    if (stopped) return;
    deps.timers.clearTimeout(attemptTimer);
    nextAttemptAt = deps.clock.now() + delayMs;
    attemptTimer = deps.timers.setTimeout(() => void attempt(), Math.max(0, delayMs));
  }

  function readToken(): Result<AgentCredential> {
    if (!deps.credential.tokenFile) return err('no token file configured');
    let token: string;
    try {
      token = readFile(deps.credential.tokenFile).trim();
    } catch (e) {
      return err(`cannot read token file ${deps.credential.tokenFile}: ${(e as Error).message}`);
    }
    return token ? ok({ kind: 'token', token }) : err(`token file ${deps.credential.tokenFile} is empty`);
  }

  // The current SVID, while valid, proves the agent's identity; the token is the fallback
  // (first start, after an expiry, or when the CA refuses the certificate, e.g. revoked).
  function credentials(): { kind: AgentCredential['kind']; get(): Result<AgentCredential> }[] {
    const out: { kind: AgentCredential['kind']; get(): Result<AgentCredential> }[] = [];
    const svid = current;
    if (valid(svid))
      out.push({ kind: 'certificate', get: () => ok({ kind: 'certificate', keyPem: svid.keyPem, chainPem: svid.chainPem }) });
    if (deps.credential.tokenFile) out.push({ kind: 'token', get: readToken });
    return out;
  }

  async function requestWith(credential: AgentCredential): Promise<Result<AgentSvid, { reason: string; code?: grpc.status }>> {
    const keys = newKey();
    const keyPem = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const csr = makeCsr({
      privateKey: keys.privateKey,
      publicKey: keys.publicKey,
      uriSans: [deps.spiffeId],
      organization: trustDomainOf(deps.spiffeId),
    });
    const r = await requestCertificate(ca, credential, {
      csr,
      ...(deps.ttlMs !== undefined ? { validitySeconds: Math.max(1, Math.round(deps.ttlMs / 1000)) } : {}),
      timeoutMs: deps.requestTimeoutMs ?? 10_000,
    });
    if (!r.ok) return err(describeFailure(r.error));
    const accepted = acceptChain(r.chain, { spiffeId: deps.spiffeId, publicKey: keys.publicKey, keyPem, now: deps.clock.now() });
    return accepted.ok ? accepted : err({ reason: `response refused: ${accepted.error}` });
  }

  async function attempt(): Promise<void> {
    if (stopped || inFlight) return;
    inFlight = true;
    attemptTimer = undefined;
    nextAttemptAt = undefined;
    try {
      const reasons: string[] = [];
      for (const c of credentials()) {
        const cred = c.get();
        if (!cred.ok) {
          reasons.push(cred.error);
          continue;
        }
        const r = await requestWith(cred.value);
        if (stopped) return;
        if (r.ok) return install(r.value, c.kind);
        reasons.push(`${c.kind}: ${r.error.reason}`);
        // Only a refused credential is worth a second try with the other one; an unreachable CA is not.
        if (r.error.code !== grpc.status.UNAUTHENTICATED && r.error.code !== grpc.status.PERMISSION_DENIED) break;
      }
      if (reasons.length === 0) reasons.push('no credential: no valid SVID and no token file');
      failures++;
      const delay = backoffDelay(failures, backoff, random());
      const level = valid(current) ? 'warn' : 'error';
      log[level]('certificate request failed', {
        failures,
        retryInMs: delay,
        cause: reasons.join('; '),
        servingUntil: valid(current) ? new Date(current.notAfter).toISOString() : undefined,
      });
      schedule(delay);
      changed();
    } finally {
      inFlight = false;
    }
  }

  function install(svid: AgentSvid, via: AgentCredential['kind']): void {
    const previous = current;
    current = svid;
    lastRoots = svid.rootsPem;
    failures = 0;
    sds?.publish({ svid: { chainPem: svid.chainPem, keyPem: svid.keyPem }, rootsPem: svid.rootsPem });
    // Lifetime counts from now, not from the back-dated notBefore (that is for clock skew only).
    const at = renewalTime({ notBefore: Math.max(svid.notBefore, deps.clock.now()), notAfter: svid.notAfter }, renewal, random());
    schedule(Math.max(0, at - deps.clock.now()));
    deps.timers.clearTimeout(expiryTimer);
    expiryTimer = deps.timers.setTimeout(() => expire(svid), Math.max(0, svid.notAfter - deps.clock.now()));
    log.info(previous ? 'svid renewed' : 'svid issued', {
      via,
      serial: svid.serialHex,
      previousSerial: previous?.serialHex,
      notAfter: new Date(svid.notAfter).toISOString(),
      renewAt: new Date(at).toISOString(),
    });
    changed();
  }

  function expire(svid: AgentSvid): void {
    if (stopped || current !== svid) return;
    // Never serve an expired SVID: the local Envoy loses its identity until a renewal succeeds.
    current = undefined;
    sds?.publish({ rootsPem: lastRoots });
    log.error('svid expired without renewal; no longer served', {
      serial: svid.serialHex,
      notAfter: new Date(svid.notAfter).toISOString(),
      failures,
    });
    if (attemptTimer === undefined && !inFlight) schedule(0);
    changed();
  }

  return {
    async start() {
      if (sds) throw new Error('node agent already started');
      if ((deps.sdsSocketPath === undefined) === (deps.certDir === undefined))
        throw new Error('node agent: give exactly one of sdsSocketPath and certDir');
      if (deps.certDir !== undefined) {
        sds = createFileSink(deps.certDir, log.child({ module: 'files' }));
        log.info('writing certificate files', { dir: deps.certDir, ca: deps.caAddress });
      } else {
        const started = await startSdsServer({
          socketPath: deps.sdsSocketPath!,
          identity: deps.spiffeId,
          log: log.child({ module: 'sds' }),
          hooks: deps.sdsHooks,
        });
        if (!started.ok) throw new Error(started.error);
        sds = started.value;
        log.info('sds listening', { socket: deps.sdsSocketPath, ca: deps.caAddress });
      }
      await attempt();
    },
    async stop() {
      stopped = true;
      deps.timers.clearTimeout(attemptTimer);
      deps.timers.clearTimeout(expiryTimer);
      listeners.clear();
      await sds?.stop();
      log.info('agent stopped', { socket: deps.sdsSocketPath, dir: deps.certDir });
    },
    status,
    onChange(cb) {
      listeners.add(cb);
      return () => void listeners.delete(cb);
    },
  };
}

function describeFailure(e: CallFailure): { reason: string; code: grpc.status } {
  return { reason: `${grpc.status[e.code] ?? e.code}: ${e.details}`, code: e.code };
}
