import * as grpc from '@grpc/grpc-js';
import {
  isGarbled,
  TypeUrl,
  xdsServices,
  type DeltaDiscoveryRequest,
  type DiscoveryRequest,
  type Incoming,
  type Node,
  type XdsServiceSpec,
} from '../proto/index.js';
import type { Logger } from '../observability/index.js';
import type { SnapshotSource } from '../snapshot/index.js';
import { DeltaStream } from './delta-stream.js';
import { SotwStream } from './sotw-stream.js';
import { defaultLimits, StreamError, type ProxyInfo, type StreamAuthenticator, type XdsHooks, type XdsLimits } from './types.js';

/** The xDS server: ADS and the per-type services, state of the world and delta. */
export interface XdsServer {
  /** Adds every xDS service to a gRPC server. */
  register(server: grpc.Server): void;
  /** The proxies connected now, one entry per stream. */
  connected(): readonly ProxyInfo[];
  /** Ends every open stream (for a graceful shutdown). */
  closeAll(): void;
  /** Ends, with UNAUTHENTICATED, every stream opened with a client certificate whose serial is now revoked; returns how many. */
  endRevoked(isRevoked: (serialHex: string) => boolean): number;
}

/** setTimeout's longest delay (about 24.8 days); a later expiry is rechecked on reconnect. */
const MAX_TIMER_MS = 2 ** 31 - 1;

type Call = grpc.ServerDuplexStream<Incoming<DiscoveryRequest | DeltaDiscoveryRequest>, Buffer>;
type Machine = { onRequest(r: DiscoveryRequest | DeltaDiscoveryRequest): void; onSnapshot: SotwStream['onSnapshot'] };

/** Creates the xDS server over a snapshot source. */
export function createXdsServer(deps: {
  snapshots: SnapshotSource;
  log: Logger;
  hooks?: XdsHooks;
  limits?: Partial<XdsLimits>;
  /** Proves each stream's identity; without it every stream is unauthenticated (plaintext development mode). */
  authenticate?: StreamAuthenticator;
  /** Wall clock in ms, for credential expiry (default Date.now). */
  now?: () => number;
  /**
   * Closes the connection a call came on. A client certificate belongs to the TLS connection, not
   * the stream: after its stream is ended for that certificate (expired, revoked, refused), Envoy
   * would retry on the same connection with the same certificate; closed, it reconnects with the
   * one it has now (renewed in its files or by its agent).
   */
  closeConnection?: (peer: { remoteAddress: string; remotePort: number }) => void;
}): XdsServer {
  const now = deps.now ?? Date.now;
  const outer = deps.hooks ?? {};
  const hooks: XdsHooks = {
    ...outer,
    onUnknownNames(proxy, typeUrl, names) {
      // A proxy may only ever have its own SVID and the trust bundle: anything else it asks for is refused, and said so.
      if (typeUrl === TypeUrl.Secret) deps.log.warn('secret request refused', { node: proxy.nodeId, identity: proxy.identity, names });
      else deps.log.debug('resources not found', { node: proxy.nodeId, typeUrl, names });
      outer.onUnknownNames?.(proxy, typeUrl, names);
    },
  };
  const limits: XdsLimits = { ...defaultLimits, ...deps.limits };
  const open = new Map<number, { proxy?: ProxyInfo; call: Call; credentialSerial?: string; end?: (reason: string) => void }>();
  let nextStreamId = 0;

  function handle(spec: XdsServiceSpec, protocol: 'sotw' | 'delta', call: Call): void {
    // Above the limit a stream is refused before anything is spent on it. UNAVAILABLE is gRPC's
    // "try again, elsewhere" code: Envoy reconnects after its backoff, and its xDS cluster's load
    // balancer picks the next replica of the bootstrap (`bootstrap --control-plane A,B,C`).
    if (open.size >= limits.maxStreams) {
      deps.log.warn('stream refused', { service: spec.name, peer: call.getPeer(), reason: `at the stream limit (${limits.maxStreams})` });
      hooks.onRefused?.(grpc.status[grpc.status.UNAVAILABLE]);
      const details = `this replica serves at most ${limits.maxStreams} streams; connect to another replica`;
      call.emit('error', Object.assign(new Error(details), { code: grpc.status.UNAVAILABLE, details }));
      return;
    }
    const streamId = ++nextStreamId;
    const peer = call.getPeer();
    const userAgent = String(call.metadata.get('user-agent')[0] ?? '');
    let proxy: ProxyInfo | undefined;
    let unwatch: (() => void) | undefined;
    let ended = false;
    open.set(streamId, { call });
    const log = deps.log.child({ stream: streamId, peer });

    const machineDeps = {
      proxy: () => proxy!,
      send: (bytes: Buffer) => {
        if (!ended) call.write(bytes);
      },
      log,
      hooks,
      limits,
      pinnedType: spec.typeUrl,
    };
    const machine: Machine = protocol === 'sotw' ? new SotwStream(machineDeps) : new DeltaStream(machineDeps);

    let expiry: NodeJS.Timeout | undefined;
    // A stream that never asks for anything holds a slot for nothing: it is ended, and said so.
    let idle: NodeJS.Timeout | undefined = setTimeout(() => {
      log.warn('stream refused', { service: spec.name, reason: `no request within ${limits.firstRequestTimeoutMs} ms` });
      finish('no request', { code: grpc.status.DEADLINE_EXCEEDED, details: 'no request received' });
    }, limits.firstRequestTimeoutMs);
    idle.unref();
    // grpc-js's peer is "<address>:<port>" (IPv6 unbracketed): the port follows the last colon.
    const closeConnection = () => {
      const i = peer.lastIndexOf(':');
      const remotePort = Number(peer.slice(i + 1));
      if (i > 0 && Number.isInteger(remotePort)) deps.closeConnection?.({ remoteAddress: peer.slice(0, i), remotePort });
    };
    const finish = (reason: string, status?: { code: grpc.status; details: string }, thenCloseConnection = false) => {
      if (ended) return;
      ended = true;
      clearTimeout(expiry);
      clearTimeout(idle);
      log.info('proxy disconnected', { node: proxy?.nodeId, reason });
      unwatch?.();
      open.delete(streamId);
      if (proxy) hooks.onDisconnect?.(proxy, reason);
      if (status) hooks.onRefused?.(grpc.status[status.code]);
      // grpc-js turns an 'error' event on a server stream into the call's final status.
      if (status) call.emit('error', Object.assign(new Error(status.details), status));
      else call.end();
      if (thenCloseConnection) closeConnection();
    };

    // Requests wait for the caller's credential to be checked; they are handled in order after it.
    let identity: string | undefined;
    let credential: { via: string; serial?: string; expiresAt?: string } | undefined;
    let queue: Incoming<DiscoveryRequest | DeltaDiscoveryRequest>[] | undefined = deps.authenticate ? [] : undefined;
    if (deps.authenticate) {
      deps
        .authenticate({ metadata: call.metadata, peerCertificate: call.getAuthContext().sslPeerCertificate })
        .then((r) => {
          if (ended) return;
          if (!r.ok) {
            log.warn('stream refused', { service: spec.name, reason: r.error.message, kind: r.error.kind });
            // The connection goes too: a client certificate that fails TLS verification (expired, say) is
            // not even shown to us (grpc-js hides unverified ones: 'no-credential'), and a retry on the same
            // connection would present it again; reconnecting, Envoy presents the one it has now.
            return finish('unauthenticated', { code: grpc.status.UNAUTHENTICATED, details: 'authentication failed' }, true);
          }
          identity = r.value.identity;
          credential = {
            via: r.value.via,
            ...(r.value.serial !== undefined ? { serial: r.value.serial } : {}),
            ...(r.value.expiresAt !== undefined ? { expiresAt: new Date(r.value.expiresAt).toISOString() } : {}),
          };
          // A certificate credential is remembered by serial: revoking it ends this stream too.
          const entry = open.get(streamId);
          if (entry && r.value.serial !== undefined) {
            entry.credentialSerial = r.value.serial;
            entry.end = (reason) => finish(reason, { code: grpc.status.UNAUTHENTICATED, details: 'credential revoked' }, true);
          }
          // A credential is good until it expires, not for the life of the stream: the stream
          // ends then, and Envoy reconnects with its current credential (or is refused).
          const expiresAt = r.value.expiresAt;
          if (expiresAt !== undefined) {
            const left = expiresAt - now();
            const byCertificate = r.value.via === 'certificate';
            if (left <= 0)
              return finish('credential expired', { code: grpc.status.UNAUTHENTICATED, details: 'credential expired' }, byCertificate);
            expiry = setTimeout(
              () => {
                log.warn('stream ended: credential expired', { node: proxy?.nodeId, identity, via: r.value.via });
                finish('credential expired', { code: grpc.status.UNAUTHENTICATED, details: 'credential expired' }, byCertificate);
              },
              Math.min(left, MAX_TIMER_MS),
            );
            expiry.unref();
          }
          const pending = queue ?? [];
          queue = undefined;
          for (const m of pending) onMessage(m);
        })
        .catch((e: unknown) => {
          log.error('authentication failed unexpectedly', { cause: String(e) });
          finish('authentication error', { code: grpc.status.UNAUTHENTICATED, details: 'authentication failed' });
        });
    } else {
      log.warn('unauthenticated plaintext stream', { service: spec.name, reason: 'plaintext development mode: no credential is checked' });
    }

    call.on('data', (msg: Incoming<DiscoveryRequest | DeltaDiscoveryRequest>) => {
      if (ended) return;
      if (idle) {
        clearTimeout(idle);
        idle = undefined;
      }
      if (queue) {
        // Bounded: a client that floods before authenticating is cut off.
        if (queue.length >= 16)
          return finish('too many requests before authentication', { code: grpc.status.RESOURCE_EXHAUSTED, details: 'too many requests' });
        queue.push(msg);
        return;
      }
      onMessage(msg);
    });

    const onMessage = (msg: Incoming<DiscoveryRequest | DeltaDiscoveryRequest>) => {
      if (ended) return;
      if (isGarbled(msg)) {
        log.warn('garbled request', { node: proxy?.nodeId, service: spec.name, bytes: msg.size, reason: msg.error });
        return finish('garbled request', { code: grpc.status.INVALID_ARGUMENT, details: 'request could not be decoded' });
      }
      if (!proxy) {
        const node = msg.node;
        if (!node || node.id === '') {
          log.warn('stream refused', { service: spec.name, reason: 'first request carries no node id' });
          return finish('no node', { code: grpc.status.INVALID_ARGUMENT, details: 'the first request must carry node.id' });
        }
        // Checked before the id is logged or kept anywhere: a huge id must cost nothing.
        if (node.id.length > limits.maxNodeIdLength) {
          log.warn('stream refused', {
            service: spec.name,
            node: `${node.id.slice(0, 64)}...`,
            reason: `node id is ${node.id.length} characters; at most ${limits.maxNodeIdLength}`,
          });
          return finish('node id too long', { code: grpc.status.INVALID_ARGUMENT, details: 'node.id is too long' });
        }
        proxy = { ...describe(streamId, node, peer, protocol, spec.name, userAgent), ...(identity !== undefined ? { identity } : {}) };
        open.set(streamId, { ...open.get(streamId), proxy, call });
        log.info('proxy connected', { node: proxy.nodeId, identity, credential, cluster: proxy.cluster, protocol, service: spec.name });
        hooks.onConnect?.(proxy);
        // Requests are handled before the snapshot arrives, so the subscription is known first.
        try {
          machine.onRequest(msg);
        } catch (e) {
          return fail(e);
        }
        const watched = deps.snapshots.watch({ nodeId: proxy.nodeId, identity, metadata: node.metadata }, (snap) => {
          if (!ended) machine.onSnapshot(snap);
        });
        if (!watched.ok) {
          log.warn('stream refused', { node: proxy.nodeId, service: spec.name, reason: watched.error.reason });
          return finish(watched.error.reason, { code: grpc.status.PERMISSION_DENIED, details: 'this proxy may not have that node config' });
        }
        unwatch = watched.value;
        return;
      }
      try {
        machine.onRequest(msg);
      } catch (e) {
        fail(e);
      }
    };

    const fail = (e: unknown) => {
      if (!(e instanceof StreamError)) throw e;
      log.warn('stream refused', { node: proxy?.nodeId, service: spec.name, reason: e.message });
      finish(e.message, { code: grpc.status[e.code], details: e.message });
    };

    call.on('end', () => finish('client closed the stream'));
    call.on('cancelled', () => finish('cancelled'));
    call.on('error', (e: Error) => finish(e.message));
  }

  return {
    register(server) {
      for (const spec of xdsServices) {
        server.addService(spec.definition, {
          [spec.sotwMethod]: (call: Call) => handle(spec, 'sotw', call),
          [spec.deltaMethod]: (call: Call) => handle(spec, 'delta', call),
        });
      }
    },
    connected: () => [...open.values()].flatMap((s) => s.proxy ?? []),
    closeAll() {
      for (const { call } of open.values()) call.end();
      open.clear();
    },
    endRevoked(isRevoked) {
      let ended = 0;
      for (const s of [...open.values()]) {
        if (s.credentialSerial === undefined || !s.end || !isRevoked(s.credentialSerial)) continue;
        deps.log.warn('stream ended: credential revoked', { node: s.proxy?.nodeId, serial: s.credentialSerial });
        s.end('credential revoked');
        ended++;
      }
      return ended;
    },
  };
}

function describe(streamId: number, node: Node, peer: string, protocol: 'sotw' | 'delta', service: string, userAgent: string): ProxyInfo {
  return { streamId, nodeId: node.id, cluster: node.cluster, peer, protocol, service, userAgent: nodeUserAgent(node) ?? userAgent };
}

/** `envoy/1.36.4` from what the node says of itself (Envoy sends no gRPC user-agent on xDS streams); undefined if it says nothing. */
function nodeUserAgent(node: Node): string | undefined {
  if (!node.userAgentName) return undefined;
  const v = node.userAgentBuildVersion?.version;
  const version = v ? `${v.majorNumber}.${v.minorNumber}.${v.patch}` : node.userAgentVersion;
  return version ? `${node.userAgentName}/${version}` : node.userAgentName;
}
