// Wiring only: read config, build the modules, start the servers. No logic lives here.
import * as grpc from '@grpc/grpc-js';
import {
  acquireStateLock,
  createEphemeralCa,
  createPluginCa,
  createSelfSignedCa,
  openSharedCa,
  removeLeftoverTempFiles,
  STATE_FILE,
  type CertificateAuthority,
  createRotationCoordinator,
} from './ca/index.js';
import { openEtcdCaStore, type EtcdCaStoreOptions, type OpenedCaStore } from './store/index.js';
import { bootSettingChanges, createFileConfigSource, type ConfigDiagnostic, type ConfigSource } from './config/index.js';
import type { Pkcs11KeyRef } from './ca/index.js';
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
import type { MeshModel, MeshSettings } from './model/index.js';
import { createPushController, type PushController } from './push/index.js';
import { createInboundPolicySource, createJwksFetcher, type HostLookup, type JwksFetchPolicy } from './policy/index.js';
import { createCsrService } from './csr/index.js';
import {
  checkSecretDir,
  listenAddressSans,
  createFileSecrets,
  removeLeftoverSecretFiles,
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
import { createFederatedBundles, startBundleEndpoint, type BundleEndpoint, type FederatedBundles } from './federation/index.js';
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import { createGrpcServer, createXdsServer, listenGuarded, shutdown, type XdsHooks, type XdsServer } from './xds/index.js';
import { createConnectionGuard, defaultMaxConnections, raiseFdLimit, type ConnectionLimits, type FdLimit } from './net/index.js';

/** A config source other than files (serve --config-store etcd), with what the metrics show of its store. */
export interface ExternalConfigSource {
  readonly source: ConfigSource;
  /** Read at each scrape: whether the store is watched, its revision, its unusable objects. */
  readonly status?: () => { readonly connected: boolean; readonly revision: number; readonly skipped: number };
  /** Releases the store's connection, after the source is closed. */
  readonly close?: () => Promise<void>;
}
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** How to run meshpilot. */
export interface MeshpilotOptions {
  /** Config files and directories (the default source); unused when `configSource` is given. */
  readonly configPaths: readonly string[];
  /** Makes the config source instead of watching files; `admit` refuses a running config that changes a boot setting. */
  readonly configSource?: (deps: {
    readonly log: Logger;
    readonly admit: (next: MeshModel, current: MeshModel | undefined) => readonly ConfigDiagnostic[];
  }) => ExternalConfigSource;
  /** Most xDS streams this replica serves at once; above it a stream is refused with UNAVAILABLE (Envoy tries another replica). */
  readonly maxStreams?: number;
  /** Where the CA keeps its root and records; absent means `ephemeral` must be set. */
  readonly stateDir?: string;
  /**
   * Create the CA in `stateDir` when it holds none (`serve --init`). Without it a directory with no
   * CA is refused, so a mistyped path never silently makes a root that no sidecar trusts.
   */
  readonly init?: boolean;
  /** Keep the CA in memory only (tests, demos): a restart makes a new root. */
  readonly ephemeral?: boolean;
  /** The CA key is in this PKCS#11 token: the self-signed root's key (with stateDir) or the plug-in intermediate's. */
  readonly caPkcs11?: Pkcs11KeyRef;
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
  /**
   * Keep the CA (keys sealed, revocations, rotation, token key) in etcd, shared with other replicas,
   * instead of the state directory (which then only holds this replica's lock and admin endpoint).
   */
  readonly caStore?: EtcdCaStoreOptions;
  /** Connection admission of the xDS port and the admin port; what is not given takes the defaults (connectionLimitsFor). */
  readonly connectionLimits?: { readonly xds?: Partial<ConnectionLimits>; readonly admin?: Partial<ConnectionLimits> };
}

/** Default per-source cap of the xDS port: sidecars behind one address (a host, a NAT) share it. */
export const DEFAULT_MAX_CONNECTIONS_PER_SOURCE = 1024;
/** Default deadline from accept to the first request, on every port. */
export const DEFAULT_FIRST_REQUEST_TIMEOUT_MS = 60_000;
/** Default cap of the admin port (operators, Prometheus, the mesh page). */
export const DEFAULT_ADMIN_MAX_CONNECTIONS = 64;

/** The limits each listener runs with: the given ones over the defaults (the xDS cap below the fd limit). */
export function connectionLimitsFor(
  given: MeshpilotOptions['connectionLimits'],
  fd: FdLimit | undefined,
): { readonly xds: ConnectionLimits; readonly admin: ConnectionLimits } {
  return {
    xds: {
      maxConnections: defaultMaxConnections(fd),
      maxPerSource: DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
      firstRequestTimeoutMs: DEFAULT_FIRST_REQUEST_TIMEOUT_MS,
      ...given?.xds,
    },
    admin: {
      maxConnections: DEFAULT_ADMIN_MAX_CONNECTIONS,
      maxPerSource: DEFAULT_ADMIN_MAX_CONNECTIONS,
      firstRequestTimeoutMs: DEFAULT_FIRST_REQUEST_TIMEOUT_MS,
      ...given?.admin,
    },
  };
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
  /** The port of this mesh's SPIFFE bundle endpoint, when MeshConfig asks for one. */
  readonly bundleEndpointPort?: number;
  /** The bundles of the federated trust domains, when MeshConfig lists any. */
  readonly federation?: FederatedBundles;
  /** Mints a proxy token for a service account (what `meshpilot token` does). */
  mintToken(namespace: string, serviceAccount: string, ttlMs?: number): Promise<string>;
  stop(): Promise<void>;
}

/** A listener that could not be bound: which one, where, and the system's error code (EADDRINUSE, EACCES, ...). */
export class ListenError extends Error {
  constructor(
    readonly listener: 'xds' | 'admin',
    readonly address: string,
    readonly code: string | undefined,
    cause: string,
  ) {
    super(`cannot listen on ${address} (${listener}): ${code === 'EADDRINUSE' ? 'address already in use' : cause}`);
  }
}

const systemCode = (e: unknown): string | undefined =>
  (e as NodeJS.ErrnoException).code ?? /\b(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b/.exec(String(e))?.[1];

/** Refuses a state directory that holds no CA unless `init` says to make one; the message names the directory and the fix. */
function checkStateDir(stateDir: string, init: boolean): void {
  const dir = resolve(stateDir);
  if (init || existsSync(join(dir, STATE_FILE))) return;
  let what = 'holds no CA (no ca.json)';
  try {
    if (!statSync(dir).isDirectory()) what = 'is not a directory';
  } catch {
    what = 'does not exist';
  }
  throw new Error(
    `state directory ${dir} ${what}. If the path is right, create the CA with 'meshpilot ca init --state-dir ${stateDir}' ` +
      `(or start once with 'serve --init'); if it is a typo, fix --state-dir: sidecars trust only the root of the CA they were bootstrapped from.`,
  );
}

/** Starts meshpilot; rejects with a message naming the problem when the first config or the CA is unusable. */
export async function startMeshpilot(o: MeshpilotOptions): Promise<RunningMeshpilot> {
  const clock = o.clock ?? systemClock;
  const timers = o.timers ?? realTimers;
  const log = o.log;
  // With the CA in etcd the state directory holds only this replica's lock, admin endpoint and config cache.
  if (o.stateDir !== undefined && !o.caStore) checkStateDir(o.stateDir, o.init === true);
  // One server per state directory: a second one would sign under the same CA without seeing its records.
  const lock = o.stateDir ? acquireStateLock(o.stateDir) : undefined;
  if (lock && !lock.ok) throw new Error(lock.error);
  // Under the lock no one else writes here: temp files are what a crash left between write and rename.
  if (o.stateDir !== undefined) {
    const removed = removeLeftoverTempFiles(o.stateDir);
    if (removed.length > 0) log.warn('leftover temp files removed', { dir: o.stateDir, files: removed });
  }
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
    const removed = removeLeftoverSecretFiles(o.secretDir);
    if (removed.length > 0) log.warn('leftover certificate files removed', { dir: o.secretDir, files: removed });
  }
  // Settings read once at start; a running config that changes one is refused (config/boot-settings.ts).
  const boot: { settings?: MeshSettings } = {};
  // The mesh page's recent events: config accepted or refused, pushes, NACKs, revocations.
  const events = createMeshEvents({ clock });
  const configLog = configEventLogger(log.child({ module: 'config' }), events);
  const admit = (next: MeshModel) => (boot.settings ? bootSettingChanges(boot.settings, next) : []);
  const external = o.configSource?.({ log: configLog, admit });
  const config =
    external?.source ??
    createFileConfigSource({
      paths: o.configPaths,
      defaultNamespace: o.defaultNamespace,
      log: configLog,
      admit,
    });
  await config.ready();
  const first = config.current();
  if (!first) {
    config.close();
    await external?.close?.();
    const why = config.lastDiagnostics().map(formatDiagnostic).join('\n  ');
    throw new Error(`the mesh config could not be loaded:\n  ${why}`);
  }
  const settings = first.settings;
  boot.settings = settings;
  const td = parseTrustDomain(settings.trustDomain);
  if (!td.ok) throw new Error(`trust domain ${settings.trustDomain}: ${td.error.message}`);

  // Envoy's SPIFFE validator reads CRLs from a domain's bundle and then requires one for every
  // certificate of the chain; a plug-in CA's intermediate would need its root's CRL, which is not ours.
  if (settings.caPluginDir && settings.federatesWith.length > 0)
    throw new Error(
      'MeshConfig spec.federatesWith with spec.caPluginDir is not supported: the SPIFFE validator would require a CRL of the plug-in root for the intermediate',
    );
  const caShared: { ca?: CertificateAuthority } = {};
  const hadCa = o.stateDir !== undefined && existsSync(join(o.stateDir, STATE_FILE));
  const caOpts = {
    trustDomain: td.value,
    clock,
    log: log.child({ module: 'ca' }),
    maxTtlMs: settings.maxCertTtlMs,
    defaultTtlMs: settings.certTtlMs,
    ...(o.caPkcs11 ? { pkcs11: o.caPkcs11 } : {}),
  };
  if (o.caPkcs11 && !settings.caPluginDir && !o.stateDir)
    throw new Error('a CA key in a PKCS#11 token needs --state-dir (self-signed root) or a MeshConfig caPluginDir (intermediate)');
  // Shared CA (replicas on etcd): the store, and the campaign for the singletons (CRL schedule, pruning).
  let shared: (OpenedCaStore & { tokenKeyPem: string }) | undefined;
  if (o.caStore) {
    const opened = await openEtcdCaStore(o.caStore, `${hostname()}/${process.pid}/${o.xdsHost}:${o.xdsPort}`, log);
    if (!opened.ok) {
      config.close();
      throw new Error(opened.error);
    }
    const s = await openSharedCa({
      ...caOpts,
      store: opened.value.store,
      pluginDir: settings.caPluginDir,
      isLeader: opened.value.leadership.isLeader,
    });
    if (!s.ok) {
      await opened.value.close();
      config.close();
      throw new Error(`the CA could not start: ${s.error.message}`);
    }
    shared = { ...opened.value, tokenKeyPem: s.value.tokenKeyPem };
    caShared.ca = s.value.ca;
  }
  const caResult = caShared.ca
    ? { ok: true as const, value: caShared.ca }
    : settings.caPluginDir
      ? createPluginCa({ ...caOpts, pluginDir: settings.caPluginDir, stateDir: o.stateDir })
      : o.stateDir
        ? createSelfSignedCa({ ...caOpts, stateDir: o.stateDir })
        : o.ephemeral
          ? { ok: true as const, value: createEphemeralCa(caOpts) }
          : undefined;
  if (!caResult) throw new Error('give --state-dir (the CA keeps its root there), --ca-store etcd, or --ephemeral');
  if (!caResult.ok) throw new Error(`the CA could not start: ${caResult.error.message}`);
  const ca = caResult.value;
  if (o.stateDir !== undefined && !o.caStore) {
    const s = ca.status();
    log.info(hadCa ? 'ca reused' : 'ca created', {
      dir: resolve(o.stateDir),
      mode: s.mode,
      trustDomain: s.trustDomain,
      roots: s.roots.map((r) => `${r.subject} (sha256 ${r.fingerprint256})`),
    });
  }

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
  // Foreign trust domains: each peer is validated against its own domain's bundle (SPIFFE validator).
  const federationResult =
    settings.federatesWith.length > 0
      ? createFederatedBundles({
          domains: settings.federatesWith,
          clock,
          timers,
          log: log.child({ module: 'federation' }),
          stats: {
            onUpdated: (trust_domain) => metrics.federationBundleUpdates.inc({ trust_domain }),
            onRefused: (trust_domain, reason) => metrics.federationBundleRefusals.inc({ trust_domain, reason }),
          },
        })
      : undefined;
  if (federationResult && !federationResult.ok) {
    config.close();
    ca.close();
    throw new Error(federationResult.error);
  }
  const federation = federationResult?.value;
  // Node raised the soft limit to the hard one at start-up; what the process has is logged, and the xDS cap stays below it.
  const fd = raiseFdLimit();
  if (fd.after) {
    metrics.fdLimit.set({ kind: 'soft' }, fd.after.soft);
    metrics.fdLimit.set({ kind: 'hard' }, fd.after.hard);
  }
  const limits = connectionLimitsFor(o.connectionLimits, fd.after);
  log[fd.after && fd.after.soft < fd.after.hard ? 'warn' : 'info']('file descriptor limit', {
    soft: fd.after?.soft,
    hard: fd.after?.hard,
    note: fd.note,
    limits,
  });
  const guardOf = (listener: 'xds' | 'admin') =>
    createConnectionGuard({
      listener,
      limits: limits[listener],
      log: log.child({ module: 'net' }),
      timers,
      stats: {
        closed: (reason) => metrics.connectionsRefused.inc({ listener, reason }),
        open: (n) => metrics.connectionsOpen.set({ listener }, n),
      },
    });
  const xdsGuard = guardOf('xds');
  const adminGuard = guardOf('admin');
  // A window opened while no proxy is connected would never be pushed (nothing to build): it is not timed.
  const convergence = createConvergenceTimer(clock, { active: () => push.proxies().length > 0 });
  const push = createPushController({
    cache,
    ca,
    svids,
    policy,
    foreignBundles: federation ? () => federation.list().map((b) => ({ trustDomain: b.trustDomain, pem: b.rootsPem.join('') })) : undefined,
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
      // Never silent: the controller logs it, the metric counts it, `meshpilot status` shows it until a build succeeds.
      onBuildError: (nodeId, cause) => {
        metrics.pushErrors.inc();
        proxyStatus.onBuildError(nodeId, cause);
      },
      onBuilt: (nodeId) => proxyStatus.onBuilt(nodeId),
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
  const offFederation = federation?.onChange((trustDomain) => {
    events.record('rotation', `federated trust bundle of ${trustDomain} updated`);
    convergence.requested();
    push.request({ kind: 'trust' });
  });
  const maintenance = setInterval(() => ca.maintain(), 60_000).unref();
  // A replica that becomes the leader takes over the CRL schedule at once (the old leader may have died mid-period).
  const offLeadership = shared?.leadership.onChange((leader) => leader && ca.maintain());
  if (shared) {
    const { store, leadership } = shared;
    metrics.observeCaStore(() => ({ ...store.health(), leader: leadership.isLeader() }));
  }
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
  // Replicas share one token key (kept sealed in the store), so a proxy's token is good at every replica.
  const tokenKey = shared
    ? { ok: true as const, value: createPrivateKey(shared.tokenKeyPem) }
    : o.stateDir
      ? loadOrCreateTokenKey(o.stateDir)
      : { ok: true as const, value: generateTokenKey() };
  if (!tokenKey.ok) throw new Error(`token signing key: ${tokenKey.error}`);
  const authenticator = createAuthenticator({
    tokens: createTokenVerifier({ key: tokenKey.value, trustDomain: td.value, clock, rootNamespace: settings.rootNamespace }),
    trust: trustSourceOf(ca),
    trustDomain: td.value,
    clock,
  });
  // The addresses xDS listens on are names clients dial too (the agent's default is 127.0.0.1:15012).
  const listenSans = listenAddressSans(o.xdsHost, networkInterfaces());
  const serving = o.insecurePlaintext
    ? undefined
    : createServingCredentials({
        ca,
        id: controlPlaneId,
        dnsNames: [...new Set(['localhost', `meshpilot.${settings.rootNamespace}.svc`, ...listenSans.dnsNames, ...(o.dnsNames ?? [])])],
        ipAddresses: listenSans.ipAddresses,
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
  const storeStatus = external?.status;
  if (storeStatus) metrics.observeConfigStore(storeStatus);
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
    closeConnection: (peer) => xdsGuard.closeConnection(peer),
    ...(o.maxStreams !== undefined ? { limits: { maxStreams: o.maxStreams } } : {}),
  });
  xdsRef.current = xds;
  // Every call lifts its connection's first-request deadline.
  const server = createGrpcServer({ onCall: (c) => xdsGuard.requested(c) });
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
      log: log.child({ module: 'csr' }),
      stats: {
        issued: () => {
          metrics.csrCount.inc();
          metrics.csrIssued.inc();
        },
        refused: (reason) => {
          metrics.csrCount.inc();
          metrics.csrRefused.inc({ reason });
        },
      },
    }).register(server);
  }
  const xdsListener = await listenGuarded(
    server,
    o.xdsHost,
    o.xdsPort,
    serving ? serving.credentials : grpc.ServerCredentials.createInsecure(),
    { admit: (socket) => xdsGuard.admit(socket), onAcceptError: (e) => xdsGuard.acceptFailed(e) },
  ).catch((e: unknown) => {
    throw new ListenError('xds', `${o.xdsHost}:${o.xdsPort}`, systemCode(e), String(e));
  });
  const xdsPort = xdsListener.port;
  if (serving) log.info('xds served over tls', { host: o.xdsHost, port: xdsPort, id: controlPlaneId });
  else log.warn('xds served in plaintext without authentication: for local development only', { host: o.xdsHost, port: xdsPort });

  // This replica's proxies judged now against a root rotation gate (no wait).
  const rolloutDeps = {
    proxies: () => push.proxies(),
    ackedSecrets: (node: string) => proxyStatus.get(node)?.types.find((t) => t.typeUrl === TypeUrl.Secret)?.acked?.version,
    secretsOf: (node: string) => secretsViewOf(cache.get(node), TypeUrl.Secret),
    rootsPem: () => ca.status().roots.map((r) => r.pem),
    chainOf: (key: string) => svids.current(key),
    signedByCurrent: (chainPem: string) => leafSignedBy(chainPem, ca.status().signingCa.pem),
    clock,
    sleep: (ms: number) => new Promise<void>((resolve) => timers.setTimeout(resolve, ms)),
  };
  // Replicas on a shared CA store: the gated rotation is recorded there and driven by the leader.
  const rotation = shared
    ? createRotationCoordinator({
        store: shared.rotations,
        replica: shared.candidate,
        isLeader: shared.leadership.isLeader,
        ca,
        localGate: (stage) => awaitRootRollout(rolloutDeps, { stage, timeoutMs: 0, rootCaName: SDS_ROOTCA, svidName: SDS_DEFAULT }),
        clock,
        log: log.child({ module: 'rotation' }),
      })
    : undefined;
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
          guard: adminGuard,
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
              awaitRootRollout(rolloutDeps, { stage, timeoutMs, rootCaName: SDS_ROOTCA, svidName: SDS_DEFAULT }),
            ...(rotation
              ? {
                  startRotation: (o) => rotation.start(o),
                  rotationView: () => rotation.view(),
                }
              : {}),
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
            async revoke(serial) {
              const holder = svids.holderOf(serial);
              const r = await ca.revoke(serial);
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
            async rotateRoot(phase, force) {
              const r = await ca.rotateRoot(phase, { force });
              return r.ok ? ok(r.value) : err(r.error.message);
            },
          },
        }).catch((e: unknown) => {
          // The xDS server is already bound: release it, or the process (or test) keeps its port.
          server.forceShutdown();
          throw new ListenError('admin', `127.0.0.1:${o.adminPort}`, systemCode(e), String(e));
        });
  // This trust domain's bundle for federated meshes, served with the control plane's own SVID (https_spiffe).
  let bundleEndpoint: BundleEndpoint | undefined;
  if (settings.bundleEndpoint) {
    if (!serving) throw new Error('MeshConfig spec.bundleEndpoint needs TLS: it is not served in the plaintext development mode');
    bundleEndpoint = await startBundleEndpoint({
      host: settings.bundleEndpoint.address,
      port: settings.bundleEndpoint.port,
      identity: { current: () => serving.currentIdentity(), onChange: (cb) => serving.onIdentity(cb) },
      trustBundle: () => ca.trustBundle(),
      refreshHintSeconds: settings.bundleEndpoint.refreshHintSeconds,
      clock,
      log: log.child({ module: 'bundle-endpoint' }),
    });
  }
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
    bundleEndpointPort: bundleEndpoint?.port,
    federation,
    meshPageLink: () => (admin && page ? page.loginLink(`http://127.0.0.1:${admin.port}`) : undefined),
    mintToken: (namespace, serviceAccount, ttlMs = 24 * 3_600_000) =>
      mintToken({ key: tokenKey.value, namespace, serviceAccount, ttlMs, clock, rootNamespace: settings.rootNamespace }),
    async stop() {
      clearInterval(maintenance);
      await bundleEndpoint?.close();
      offFederation?.();
      federation?.close();
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
      await external?.close?.();
      push.close();
      xds.closeAll();
      await shutdown(server, 2_000);
      await xdsListener.close();
      xdsGuard.close();
      adminGuard.close();
      svids.close();
      serving?.close();
      offLeadership?.();
      await rotation?.close();
      ca.close();
      // Resigns the singletons, so another replica takes them over without waiting for the lease to expire.
      await shared?.close();
      unlock();
    },
  };
}
