// Test fixture for the node agent: a CSR service on a real TLS port that can be stopped
// and started again on the same port, manual timers over a manual clock, and an SDS client
// on the agent's Unix socket. Not exported from index.
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { createAuthenticator, createTokenVerifier, generateTokenKey, mintToken, trustSourceOf } from '../auth/index.js';
import { createEphemeralCa, generateKeyPair, type CertificateAuthority } from '../ca/index.js';
import { createCsrService, optionalClientCertCredentials } from '../csr/index.js';
import { mustSpiffeId, mustTrustDomain } from '../identity/index.js';
import { createManualClock, unwrap, type Clock } from '../lib/index.js';
import { createRecordingLogger } from '../observability/index.js';
import { DiscoveryRequest, Secret, SecretDiscoveryServiceClient, TypeUrl, type DiscoveryResponse } from '../proto/index.js';
import type { Timers } from '../secrets/index.js';
import { createGrpcServer, listen, shutdown } from '../xds/index.js';

export const TD = mustTrustDomain('cluster.local');
export const VM_ID = mustSpiffeId('spiffe://cluster.local/ns/vm-ns/sa/vm-app');
export const SERVER_NAME = 'meshpilot.istio-system.svc';
/** The SPIFFE ID of the fixture's serving certificate (the control plane's). */
export const CONTROL_PLANE_ID = 'spiffe://cluster.local/ns/istio-system/sa/meshpilot';

/** Polls `fn` until it returns a truthy value, every 5 ms, for at most `timeoutMs`. */
export async function eventually<T>(fn: () => T | false | undefined, what: string, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Timers that fire only when the test says so, moving the manual clock to their due time. */
export interface ManualTimers extends Timers {
  /** Due time of the earliest pending timer. */
  nextDue(): number | undefined;
  /** Moves the clock to the earliest pending timer and fires it; false if none is pending. */
  fireNext(): boolean;
  pending(): number;
}

/** Creates manual timers over a manual clock. */
export function createManualTimers(clock: Clock & { set(ms: number): void }): ManualTimers {
  const timers = new Map<number, { at: number; fn: () => void }>();
  let next = 0;
  const earliest = () => [...timers.entries()].sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
  return {
    setTimeout(fn, ms) {
      const h = ++next;
      timers.set(h, { at: clock.now() + ms, fn });
      return h;
    },
    clearTimeout: (h) => void timers.delete(h as number),
    nextDue: () => earliest()?.[1].at,
    fireNext() {
      const e = earliest();
      if (!e) return false;
      timers.delete(e[0]);
      if (e[1].at > clock.now()) clock.set(e[1].at);
      e[1].fn();
      return true;
    },
    pending: () => timers.size,
  };
}

/** A CSR service over TLS that can go down and come back on the same port. */
export interface CaFixture {
  readonly ca: CertificateAuthority;
  readonly clock: ReturnType<typeof createManualClock>;
  readonly log: ReturnType<typeof createRecordingLogger>;
  readonly rootPem: string;
  address(): string;
  token(o?: Partial<Parameters<typeof mintToken>[0]>): Promise<string>;
  /** The 'certificate issued' log lines so far. */
  issued(): { identity: unknown; via: unknown; serial: unknown }[];
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  close(): Promise<void>;
}

/** Starts the CA, the authenticator and the CSR service on 127.0.0.1 with a serving certificate for SERVER_NAME and 127.0.0.1 (by default the control plane's SPIFFE ID). */
export async function startCaFixture(o: { servingId?: string } = {}): Promise<CaFixture> {
  const clock = createManualClock(Date.now());
  const ca = createEphemeralCa({ trustDomain: TD, clock });
  const tokenKey = generateTokenKey();
  const log = createRecordingLogger();
  const authenticator = createAuthenticator({
    tokens: createTokenVerifier({ key: tokenKey, trustDomain: TD, clock }),
    trust: trustSourceOf(ca),
    trustDomain: TD,
    clock,
  });
  const service = createCsrService({ signer: ca, authenticator, maxTtlMs: 3_600_000, defaultTtlMs: 3_600_000, clock, log });
  const servingKey = generateKeyPair('ec-p256');
  const serving = unwrap(
    ca.signSvid({
      spiffeId: mustSpiffeId(o.servingId ?? CONTROL_PLANE_ID),
      publicKey: servingKey.publicKey,
      dnsNames: [SERVER_NAME],
      ipAddresses: ['127.0.0.1'],
      ttlMs: 24 * 3_600_000,
    }),
  );
  const rootPem = ca.trustBundle().pem;
  const material = {
    certChainPem: serving.chainPem.join(''),
    keyPem: servingKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    rootsPem: rootPem,
  };
  let server: grpc.Server | undefined;
  let port = 0;
  const startServer = async () => {
    server = createGrpcServer();
    service.register(server);
    port = await listen(server, '127.0.0.1', port, optionalClientCertCredentials(material).credentials);
  };
  const stopServer = async () => {
    if (server) await shutdown(server, 500);
    server = undefined;
  };
  await startServer();
  return {
    ca,
    clock,
    log,
    rootPem,
    address: () => `127.0.0.1:${port}`,
    token: (t = {}) => mintToken({ key: tokenKey, namespace: 'vm-ns', serviceAccount: 'vm-app', ttlMs: 24 * 3_600_000, clock, ...t }),
    issued: () =>
      log.lines
        .filter((l) => l.msg === 'certificate issued')
        .map((l) => ({ identity: l.fields.identity, via: l.fields.via, serial: l.fields.serial })),
    stopServer,
    startServer,
    async close() {
      await stopServer();
      ca.close();
    },
  };
}

/** What an SDS client saw: every response's secrets, by name. */
export interface SdsWatcher {
  readonly responses: ReadonlyMap<string, Secret>[];
  latest(): ReadonlyMap<string, Secret> | undefined;
  /** Serial (lowercase hex) of the leaf in the latest `default`, if any. */
  defaultSerial(): string | undefined;
  close(): void;
}

/** Opens a SotW SDS stream on the agent's socket (what Envoy does), asking for `default` and `ROOTCA`, ACKing each response. */
export function watchSds(socketPath: string, nodeId = 'sidecar~10.0.0.7~vm-app.vm-ns~vm-ns.svc.cluster.local'): SdsWatcher {
  const client = new SecretDiscoveryServiceClient(`unix:${socketPath}`, grpc.credentials.createInsecure());
  const stream = client.streamSecrets();
  const responses: Map<string, Secret>[] = [];
  const request = (r: Partial<DiscoveryResponse> = {}) =>
    stream.write(
      DiscoveryRequest.fromPartial({
        node: { id: nodeId, cluster: 'vm-app.vm-ns' },
        typeUrl: TypeUrl.Secret,
        resourceNames: ['default', 'ROOTCA'],
        versionInfo: r.versionInfo ?? '',
        responseNonce: r.nonce ?? '',
      }),
    );
  stream.on('data', (r: DiscoveryResponse) => {
    responses.push(new Map(r.resources.map((a) => Secret.decode(a.value)).map((s) => [s.name, s])));
    request(r);
  });
  stream.on('error', () => {});
  request();
  const latest = () => responses.at(-1);
  return {
    responses,
    latest,
    defaultSerial() {
      const chain = latest()?.get('default')?.tlsCertificate?.certificateChain?.inlineString;
      return chain ? new X509Certificate(chain).serialNumber.toLowerCase().replace(/^0+/, '') : undefined;
    },
    close() {
      stream.cancel();
      client.close();
    },
  };
}
