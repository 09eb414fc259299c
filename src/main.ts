// Wiring only: read config, build the modules, start the servers. No logic lives here.
import * as grpc from '@grpc/grpc-js';
import { acquireStateLock, createEphemeralCa, createPluginCa, createSelfSignedCa, type CertificateAuthority } from './ca/index.js';
import { bootSettingChanges, createFileConfigSource, type ConfigSource } from './config/index.js';
import {
  createAuthenticator,
  createTokenVerifier,
  generateTokenKey,
  loadOrCreateTokenKey,
  mintToken,
  trustSourceOf,
} from './auth/index.js';
import {
  CONTROL_PLANE_SERVICE_ACCOUNT,
  isReservedIdentity,
  parseSpiffeId,
  parseTrustDomain,
  workloadId,
  type SpiffeId,
} from './identity/index.js';
import { err, formatDiagnostic, ok, systemClock, type Clock } from './lib/index.js';
import type { Logger } from './observability/index.js';
import type { MeshSettings } from './model/index.js';
import { createPushController, type PushController } from './push/index.js';
import { createInboundPolicySource, createJwksFetcher, type HostLookup, type JwksFetchPolicy } from './policy/index.js';
import { createCsrService } from './csr/index.js';
import {
  checkSecretDir,
  createFileSecrets,
  createServingCredentials,
  createSvidStore,
  realTimers,
  type FileAccount,
  type SvidStore,
  type Timers,
} from './secrets/index.js';
import { createSnapshotCache, describeSnapshot, type SnapshotCache } from './snapshot/index.js';
import {
  configEventLogger,
  createMeshEvents,
  createMeshPage,
  createMeshViewBuilder,
  publishAdminEndpoint,
  startAdminServer,
} from './admin/index.js';
import {
  awaitRootRollout,
  buildMtlsReport,
  leafSignedBy,
  countingCsrLogger,
  decodeClusterTls,
  createConvergenceTimer,
  createMetrics,
  createProxyReporter,
  createProxyStatusTracker,
  proveRevocation,
  proxyVersion,
  secretsViewOf,
  resolveOrigin,
  type Metrics,
  type ProxyStatusTracker,
} from './observability/index.js';
import { TypeUrl, typeShortName } from './proto/index.js';
import { SDS_DEFAULT, SDS_ROOTCA, secureNamingOf } from './generate/index.js';
import { createPublicKey, randomBytes } from 'node:crypto';
import { createGrpcServer, createXdsServer, listen, shutdown, type XdsHooks, type XdsServer } from './xds/index.js';

/** How to run meshpilot. */
export interface MeshpilotOptions {
  readonly configPaths: readonly string[];
  /** Where the CA keeps its root and records; absent means `ephemeral` must be set. */
  readonly stateDir?: string;
  /** Keep the CA in memory only (tests, demos): a restart makes a new root. */
  readonly ephemeral?: boolean;
  readonly xdsHost: string;
  readonly xdsPort: number;
  /** Serve xDS in plaintext without authentication: local development only, never serves keys to anyone it cannot check. */
  readonly insecurePlaintext?: boolean;
  /** DNS names in the serving certificate, besides `localhost` and `meshpilot.<root namespace>.svc`. */
  readonly dnsNames?: readonly string[];
  readonly log: Logger;
  /** Loopback port of the admin server (metrics, debug, CA operations); 0 picks one; absent: none. */
  readonly adminPort?: number;
  readonly hooks?: XdsHooks;
  readonly clock?: Clock;
  readonly timers?: Timers;
  /** What jwksUri fetches may reach (default: HTTPS to public addresses only). */
  readonly jwksFetchPolicy?: Partial<JwksFetchPolicy>;
  /** Extra roots (PEM) trusted for jwksUri and OpenID discovery fetches, besides Node's; tests use a local issuer's. */
  readonly jwksCa?: string;
  /** Host name resolution of jwksUri and discovery fetches (default the system resolver); tests name a loopback issuer. */
  readonly jwksLookup?: HostLookup;
  /** The namespace of config documents that name none (as `kubectl apply -n`). */
  readonly defaultNamespace?: string;
  /** Keep each workload service account's key.pem, cert-chain.pem and root-cert.pem under `<secretDir>/<ns>/<sa>/`. */
  readonly secretDir?: string;
}

/** A running control plane. */
export interface RunningMeshpilot {
  readonly xdsPort: number;
  readonly ca: CertificateAuthority;
  readonly config: ConfigSource;
  readonly push: PushController;
  readonly cache: SnapshotCache;
  readonly svids: SvidStore;
  readonly xds: XdsServer;
  /** The control plane's own SPIFFE ID (its serving certificate's URI SAN). */
  readonly controlPlaneId: SpiffeId;
  /** Whether xDS is served over TLS with authentication (false only in plaintext development mode). */
  readonly secure: boolean;
  /** The admin server's port, when one runs. */
  readonly adminPort?: number;
  readonly metrics: Metrics;
  /** Per proxy and type: what was sent, ACKed and NACKed (what `meshpilot status` shows). */
  readonly proxyStatus: ProxyStatusTracker;
  /** A one-time login link to the mesh page on the admin port, when one runs. */
  meshPageLink(): string | undefined;
  /** Mints a proxy token for a service account (what `meshpilot token` does). */
  mintToken(namespace: string, serviceAccount: string, ttlMs?: number): Promise<string>;
  stop(): Promise<void>;
}

/** Starts meshpilot; rejects with a message naming the problem when the first config or the CA is unusable. */
export async function startMeshpilot(o: MeshpilotOptions): Promise<RunningMeshpilot> {
  const clock = o.clock ?? systemClock;
  const timers = o.timers ?? realTimers;
  const log = o.log;
  // One server per state directory: a second one would sign under the same CA without seeing its records.
  const lock = o.stateDir ? acquireStateLock(o.stateDir) : undefined;
  if (lock && !lock.ok) throw new Error(lock.error);
  try {
    return await start(o, clock, timers, log, () => lock?.value.release());
  } catch (e) {
    lock?.value.release();
    throw e;
  }
}

async function start(o: MeshpilotOptions, clock: Clock, timers: Timers, log: Logger, unlock: () => void): Promise<RunningMeshpilot> {
  // Refused before anything starts: a sidecar reading its SVID from there would never get one.
  if (o.secretDir !== undefined) {
    const writable = checkSecretDir(o.secretDir);
    if (!writable.ok) throw new Error(writable.error);
  }
  // Settings read once at start; a running config that changes one is refused (config/boot-settings.ts).
  const boot: { settings?: MeshSettings } = {};
  // The mesh page's recent events: config accepted or refused, pushes, NACKs, revocations.
  const events = createMeshEvents({ clock });
  const config = createFileConfigSource({
    paths: o.configPaths,
    defaultNamespace: o.defaultNamespace,
    log: configEventLogger(log.child({ module: 'config' }), events),
    admit: (next) => (boot.settings ? bootSettingChanges(boot.settings, next) : []),
  });
  await config.ready();
  const first = config.current();
  if (!first) {
    config.close();
    const why = config.lastDiagnostics().map(formatDiagnostic).join('\n  ');
    throw new Error(`the mesh config could not be loaded:\n  ${why}`);
  }
  const settings = first.settings;
  boot.settings = settings;
  const td = parseTrustDomain(settings.trustDomain);
  if (!td.ok) throw new Error(`trust domain ${settings.trustDomain}: ${td.error.message}`);

  const caOpts = {
    trustDomain: td.value,
    clock,
    log: log.child({ module: 'ca' }),
    maxTtlMs: settings.maxCertTtlMs,
    defaultTtlMs: settings.certTtlMs,
  };
  const caResult = settings.caPluginDir
    ? createPluginCa({ ...caOpts, pluginDir: settings.caPluginDir, stateDir: o.stateDir })
    : o.stateDir
      ? createSelfSignedCa({ ...caOpts, stateDir: o.stateDir })
      : o.ephemeral
        ? { ok: true as const, value: createEphemeralCa(caOpts) }
        : undefined;
  if (!caResult) throw new Error('give --state-dir (the CA keeps its root there) or --ephemeral');
  if (!caResult.ok) throw new Error(`the CA could not start: ${caResult.error.message}`);
  const ca = caResult.value;

  const svids = createSvidStore({
    ca,
    ttlMs: settings.certTtlMs,
    renewal: { atFraction: settings.renewAtFraction, jitterFraction: settings.renewJitterFraction },
    clock,
    timers,
    log: log.child({ module: 'svid' }),
  });
  const cache = createSnapshotCache({ log: log.child({ module: 'snapshot' }) });
  const jwks = createJwksFetcher({
    clock,
    log: log.child({ module: 'jwks' }),
    policy: o.jwksFetchPolicy,
    ...(o.jwksCa ? { ca: o.jwksCa } : {}),
    ...(o.jwksLookup ? { lookup: o.jwksLookup } : {}),
  });
  const policy = createInboundPolicySource({
    fetchJwks: (uri, via) => jwks.get(uri, via),
    log: log.child({ module: 'policy' }),
    plaintextOnly: o.insecurePlaintext,
  });
  const metrics = createMetrics({ clock });
  // A window opened while no proxy is connected would never be pushed (nothing to build): it is not timed.
  const convergence = createConvergenceTimer(clock, { active: () => push.proxies().length > 0 });
  const push = createPushController({
    cache,
    ca,
    svids,
    policy,
    // The plaintext development mode never serves private keys: sidecars then talk plaintext.
    serveKeys: !o.insecurePlaintext,
    log: log.child({ module: 'push' }),
    clock,
    timers,
    stats: {
      onPush: (proxies) => {
        metrics.pushes.inc(proxies);
        events.record('push', `pushed to ${proxies} ${proxies === 1 ? 'proxy' : 'proxies'}`);
        const seconds = convergence.pushed();
        if (seconds !== undefined) metrics.convergence.observe(seconds);
      },
      onBuildError: () => metrics.pushErrors.inc(),
    },
  });
  const adminToken = randomBytes(24).toString('base64url');
  // Built lazily, only while a page is open; it reads the modules below when it runs.
  const page =
    o.adminPort === undefined
      ? undefined
      : createMeshPage({
          token: adminToken,
          clock,
          log: log.child({ module: 'mesh-page' }),
          view: createMeshViewBuilder({
            model: () => config.current(),
            proxies: () => reporter.list(),
            svidOf: (key) => svids.current(key),
            ca: () => ca.status(),
            crlNextUpdates: () => ca.crl().map((c) => c.nextUpdate),
            events: () => events.list(),
            now: () => clock.now(),
            renewAtFraction: settings.renewAtFraction,
          }),
        });
  const offEvents = events.onRecord(() => page?.changed());
  const offJwks = jwks.onChange(() => {
    policy.invalidate();
    convergence.requested();
    push.request({ kind: 'jwks' });
  });
  const unsubscribe = config.subscribe((model, changes) => {
    convergence.requested();
    push.setModel(model, { kind: 'config', changes });
  });
  const offSvids = svids.onChanged((workloadKey) => {
    convergence.requested();
    push.request({ kind: 'svid', workloadKey });
    page?.changed();
  });
  const seenRevoked = new Set(ca.status().revoked.map((r) => r.serialHex));
  // The xDS server is made after the CA hooks; revocations reach its streams through this.
  const xdsRef: { current?: XdsServer } = {};
  const offCa = ca.onChange((c) => {
    if (c.kind !== 'trust-bundle' && c.kind !== 'crl') return;
    // However a certificate was revoked (admin port, CLI, another path), its holder never keeps serving it.
    if (c.kind === 'crl') {
      const revoked = new Set(ca.status().revoked.map((r) => r.serialHex.toLowerCase().replace(/^0+/, '')));
      for (const serial of revoked) svids.reissueSerial(serial);
      // A stream opened with a now-revoked client certificate (a VM sidecar's SVID) ends too.
      xdsRef.current?.endRevoked((serial) => revoked.has(serial));
    }
    if (c.kind === 'crl')
      for (const r of ca.status().revoked.filter((x) => !seenRevoked.has(x.serialHex))) {
        seenRevoked.add(r.serialHex);
        events.record('revocation', `revoked ${r.serialHex} (${r.spiffeId})`);
      }
    if (c.kind === 'trust-bundle') events.record('rotation', `trust bundle now holds ${ca.status().roots.length} root(s)`);
    convergence.requested();
    push.request({ kind: 'trust' });
  });
  const maintenance = setInterval(() => ca.maintain(), 60_000).unref();
  // Certificates as files: one SVID per workload service account, kept whether or not a proxy is connected.
  const files = o.secretDir
    ? createFileSecrets({
        dir: o.secretDir,
        svids,
        trustBundlePem: () => ca.trustBundle().pem,
        onTrustChange: (cb) => ca.onChange((c) => c.kind === 'trust-bundle' && cb()),
        log: log.child({ module: 'files' }),
      })
    : undefined;
  const offFiles = files
    ? config.subscribe((model) => {
        const accounts = new Map<string, FileAccount>();
        for (const w of model.workloads) {
          const id = workloadId(td.value, w.serviceAccount.namespace, w.serviceAccount.name);
          if (id.ok && !isReservedIdentity(id.value, settings))
            accounts.set(id.value, { namespace: w.serviceAccount.namespace, serviceAccount: w.serviceAccount.name, spiffeId: id.value });
        }
        files.setAccounts([...accounts.values()]);
      })
    : undefined;

  const idResult = workloadId(td.value, settings.rootNamespace, CONTROL_PLANE_SERVICE_ACCOUNT);
  if (!idResult.ok) throw new Error(`control plane identity: ${idResult.error.message}`);
  const controlPlaneId = idResult.value;
  const tokenKey = o.stateDir ? loadOrCreateTokenKey(o.stateDir) : { ok: true as const, value: generateTokenKey() };
  if (!tokenKey.ok) throw new Error(`token signing key: ${tokenKey.error}`);
  const authenticator = createAuthenticator({
    tokens: createTokenVerifier({ key: tokenKey.value, trustDomain: td.value, clock, rootNamespace: settings.rootNamespace }),
    trust: trustSourceOf(ca),
    trustDomain: td.value,
    clock,
  });
  const serving = o.insecurePlaintext
    ? undefined
    : createServingCredentials({
        ca,
        id: controlPlaneId,
        dnsNames: ['localhost', `meshpilot.${settings.rootNamespace}.svc`, ...(o.dnsNames ?? [])],
        ttlMs: settings.certTtlMs,
        renewal: { atFraction: settings.renewAtFraction, jitterFraction: settings.renewJitterFraction },
        clock,
        timers,
        log: log.child({ module: 'serving' }),
      });

  const typeLabel = (t: TypeUrl) => typeShortName[t];
  const proxyStatus = createProxyStatusTracker({
    clock,
    types: Object.entries(typeShortName).map(([typeUrl, name]) => ({ typeUrl, name })),
    resolve(nodeId, typeUrl, name, hint) {
      const m = config.current();
      const p = push.proxies().find((x) => x.nodeId === nodeId);
      return m && p ? resolveOrigin(m, p.workloadKey, typeUrl, name, hint) : undefined;
    },
  });
  const hooks: XdsHooks = {
    onConnect: (p) => {
      metrics.xdsConnected.inc();
      metrics.pilotXds.inc({ version: proxyVersion(p.userAgent) });
      proxyStatus.onConnect(p);
      page?.changed();
      o.hooks?.onConnect?.(p);
    },
    onDisconnect: (p, reason) => {
      metrics.xdsConnected.dec();
      metrics.pilotXds.dec({ version: proxyVersion(p.userAgent) });
      proxyStatus.onDisconnect(p);
      page?.changed();
      o.hooks?.onDisconnect?.(p, reason);
    },
    onSend: (p, t, v, names) => {
      metrics.xdsPushes.inc({ type: typeLabel(t) });
      metrics.pilotXdsPushes.inc({ type: typeLabel(t) });
      proxyStatus.onSend(p, t, v, names);
      o.hooks?.onSend?.(p, t, v, names);
    },
    onAck: (p, t, v) => {
      metrics.xdsAcks.inc({ type: typeLabel(t) });
      proxyStatus.onAck(p, t, v);
      page?.changed();
      o.hooks?.onAck?.(p, t, v);
    },
    onNack: (p, t, v, e, names) => {
      metrics.xdsNacks.inc({ type: typeLabel(t) });
      metrics.pilotXdsRejects.inc({ type: typeLabel(t) });
      proxyStatus.onNack(p, t, v, e, names);
      events.record('nack', `${typeLabel(t).toUpperCase()} NACK from ${p.nodeId}: ${e.slice(0, 400)}`);
      o.hooks?.onNack?.(p, t, v, e, names);
    },
    onRefused: (reason) => {
      metrics.xdsRefused.inc({ reason });
      o.hooks?.onRefused?.(reason);
    },
    onUnknownNames: (p, t, names) => {
      if (t === TypeUrl.Secret) metrics.secretsRefused.inc();
      o.hooks?.onUnknownNames?.(p, t, names);
    },
  };
  const offIssued = svids.onIssued((reason) => metrics.svidsIssued.inc({ reason }));
  metrics.observeCertificates(() => {
    const s = ca.status();
    return {
      roots: s.roots,
      intermediates: s.intermediates,
      workloads: push.proxies().flatMap((p) => svids.current(p.workloadKey) ?? []),
    };
  });
  metrics.observeProxySync(() => proxyStatus.list());
  const reporter = createProxyReporter({ tracker: proxyStatus, proxies: () => push.proxies(), svidOf: (key) => svids.current(key) });
  // A new signing CA (root rotation): every workload moves to a certificate it signed.
  const offSigning = ca.onChange((c) => {
    if (c.kind === 'signing-ca') svids.reissueAll();
  });

  const xds = createXdsServer({
    snapshots: push,
    log: log.child({ module: 'xds' }),
    hooks,
    authenticate: serving ? (call) => authenticator.authenticate(call) : undefined,
    now: () => clock.now(),
  });
  xdsRef.current = xds;
  const server = createGrpcServer();
  xds.register(server);
  // Istio's certificate service for node agents on VMs: only over TLS, where callers can be authenticated.
  if (serving) {
    createCsrService({
      rootNamespace: settings.rootNamespace,
      signer: ca,
      authenticator,
      maxTtlMs: settings.maxCertTtlMs,
      defaultTtlMs: settings.certTtlMs,
      clock,
      log: countingCsrLogger(log.child({ module: 'csr' }), metrics),
    }).register(server);
  }
  const xdsPort = await listen(server, o.xdsHost, o.xdsPort, serving ? serving.credentials : grpc.ServerCredentials.createInsecure());
  if (serving) log.info('xds served over tls', { host: o.xdsHost, port: xdsPort, id: controlPlaneId });
  else log.warn('xds served in plaintext without authentication: for local development only', { host: o.xdsHost, port: xdsPort });

  const admin =
    o.adminPort === undefined
      ? undefined
      : await startAdminServer({
          host: '127.0.0.1',
          port: o.adminPort,
          token: adminToken,
          metrics,
          log: log.child({ module: 'admin' }),
          page,
          actions: {
            connections: () => xds.connected(),
            config: (node) => {
              const snap = cache.get(node);
              return snap ? describeSnapshot(snap) : { error: `no snapshot for node ${node}` };
            },
            caStatus: () => ca.status(),
            awaitRevocation: (serialHex, holder, timeoutMs) =>
              proveRevocation(
                {
                  proxies: () => push.proxies(),
                  ackedSecrets: (node) => proxyStatus.get(node)?.types.find((t) => t.typeUrl === TypeUrl.Secret)?.acked?.version,
                  secretsOf: (node) => secretsViewOf(cache.get(node), TypeUrl.Secret),
                  crlPem: () =>
                    ca
                      .crl()
                      .map((c) => c.pem)
                      .join(''),
                  chainOf: (key) => svids.current(key),
                  clock,
                  sleep: (ms) => new Promise((resolve) => timers.setTimeout(resolve, ms)),
                },
                { serialHex, holder, timeoutMs, rootCaName: SDS_ROOTCA, svidName: SDS_DEFAULT },
              ),
            proxyStatus: (proxy) => (proxy === undefined ? reporter.list() : reporter.get(proxy)),
            awaitRootRollout: (stage, timeoutMs) =>
              awaitRootRollout(
                {
                  proxies: () => push.proxies(),
                  ackedSecrets: (node) => proxyStatus.get(node)?.types.find((t) => t.typeUrl === TypeUrl.Secret)?.acked?.version,
                  secretsOf: (node) => secretsViewOf(cache.get(node), TypeUrl.Secret),
                  rootsPem: () => ca.status().roots.map((r) => r.pem),
                  chainOf: (key) => svids.current(key),
                  signedByCurrent: (chainPem) => leafSignedBy(chainPem, ca.status().signingCa.pem),
                  clock,
                  sleep: (ms) => new Promise((resolve) => timers.setTimeout(resolve, ms)),
                },
                { stage, timeoutMs, rootCaName: SDS_ROOTCA, svidName: SDS_DEFAULT },
              ),
            mtlsReport(filter) {
              const m = config.current();
              const proxies = push.proxies();
              const nodeOf = (key: string) => proxies.find((p) => p.workloadKey === key)?.nodeId;
              const typeOf = { cds: TypeUrl.Cluster, sds: TypeUrl.Secret } as const;
              return buildMtlsReport(
                {
                  clients: () => proxies.map((p) => ({ workload: p.workloadKey, nodeId: p.nodeId })),
                  services: () =>
                    m
                      ? secureNamingOf(m, td.value).map((e) => ({
                          host: e.host,
                          port: e.port.port,
                          cluster: e.cluster,
                          expectedIds: e.expectedIds,
                          servers: e.workloads.map((w) => {
                            const key = `${w.namespace}/${w.name}`;
                            const nodeId = nodeOf(key);
                            return {
                              workload: key,
                              mode: policy(m, w, e.port, e.kind).mtlsMode,
                              sidecar: w.sidecar,
                              ...(nodeId ? { nodeId } : {}),
                            };
                          }),
                        }))
                      : [],
                  pushedCluster: (node, name) => {
                    const r = cache.get(node)?.resources(TypeUrl.Cluster).get(name);
                    return r ? decodeClusterTls(r.anyBytes()) : undefined;
                  },
                  currentVersion: (node, t) => cache.get(node)?.typeVersion(typeOf[t]),
                  ackedVersion: (node, t) => proxyStatus.get(node)?.types.find((x) => x.typeUrl === typeOf[t])?.acked?.version,
                  svidOf: (key) => svids.current(key),
                  now: () => clock.now(),
                },
                filter,
              );
            },
            revoke(serial) {
              const holder = svids.holderOf(serial);
              const r = ca.revoke(serial);
              if (!r.ok) return err(r.error.message);
              // The holder gets a fresh certificate (ca.onChange below); every proxy gets the new CRL.
              return ok({ revoked: r.value, reissued: holder ?? null });
            },
            sign(req) {
              const id = parseSpiffeId(req.spiffeId);
              if (!id.ok) return err(id.error.message);
              if (isReservedIdentity(id.value, settings)) return err(`${id.value} is reserved for the control plane`);
              let publicKey;
              try {
                publicKey = createPublicKey(req.publicKeyPem);
              } catch (e) {
                return err(`publicKeyPem: ${(e as Error).message}`);
              }
              const r = ca.signSvid({ spiffeId: id.value, publicKey, ...(req.ttlMs !== undefined ? { ttlMs: req.ttlMs } : {}) });
              return r.ok
                ? ok({
                    chainPem: r.value.chainPem,
                    serialHex: r.value.serialHex,
                    notBefore: r.value.notBefore,
                    notAfter: r.value.notAfter,
                    rootPem: ca.trustBundle().pem,
                  })
                : err(r.error.message);
            },
            rotateRoot(phase, force) {
              const r = ca.rotateRoot(phase, { force });
              return r.ok ? ok(r.value) : err(r.error.message);
            },
          },
        });
  // With a state directory, `meshpilot ca …` finds this server and goes through it instead of the files.
  const published = admin && o.stateDir ? publishAdminEndpoint(o.stateDir, `http://127.0.0.1:${admin.port}`, adminToken) : undefined;

  return {
    xdsPort,
    ca,
    config,
    push,
    cache,
    svids,
    xds,
    controlPlaneId,
    secure: serving !== undefined,
    adminPort: admin?.port,
    metrics,
    proxyStatus,
    meshPageLink: () => (admin && page ? page.loginLink(`http://127.0.0.1:${admin.port}`) : undefined),
    mintToken: (namespace, serviceAccount, ttlMs = 24 * 3_600_000) =>
      mintToken({ key: tokenKey.value, namespace, serviceAccount, ttlMs, clock, rootNamespace: settings.rootNamespace }),
    async stop() {
      clearInterval(maintenance);
      published?.unpublish();
      page?.close();
      offEvents();
      await admin?.close();
      offIssued();
      offSigning();
      offJwks();
      jwks.close();
      unsubscribe();
      offSvids();
      offCa();
      offFiles?.();
      files?.close();
      config.close();
      push.close();
      xds.closeAll();
      await shutdown(server, 2_000);
      svids.close();
      serving?.close();
      ca.close();
      unlock();
    },
  };
}
