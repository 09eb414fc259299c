import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { systemClock } from '../lib/index.js';
import { parseDuration } from '../model/index.js';
import type { Clock } from '../lib/index.js';
import { createLogger } from '../observability/index.js';
import type { Logger } from '../observability/index.js';
import { DEFAULT_ROOT_NAMESPACE, isReservedIdentity, parseSpiffeId, parseTrustDomain, workloadId } from '../identity/index.js';
import type { SpiffeId, TrustDomain } from '../identity/index.js';
import { createPrivateKey } from 'node:crypto';
import {
  acquireStateLock,
  createPluginCa,
  createSelfSignedCa,
  generateKeyPair,
  generatePkcs11Key,
  importPkcs11Key,
  openCa,
  pkcs11KeyExists,
  PLUGIN_FILES,
} from '../ca/index.js';
import type { CaError, CaStatus, CertificateAuthority, CertificateSummary, KeyKind, Pkcs11KeyRef } from '../ca/index.js';
import { addPkcs11Options, pkcs11RefFromFlags } from './pkcs11-flags.js';
import type { Pkcs11Flags } from './pkcs11-flags.js';
import type { Result } from '../lib/index.js';
import { callAdmin, findAdminEndpoint } from '../admin/index.js';
import type { RevocationProof } from '../observability/index.js';
import { followSharedRotation, runGatedRotation } from './gated-rotation.js';
import type { SharedRotationState } from './gated-rotation.js';
import { encodeSpiffeBundle } from '../federation/index.js';
import type { CaStoreFlags, EtcdCaStoreSettings } from '../store/index.js';
import { addCaLocationOptions, parseCaLocation, withEtcdCa } from './etcd-ca-access.js';
import type { CaLocation, EtcdCaOpen, EtcdCaOpened } from './etcd-ca-access.js';

/** What the CA commands need from outside: injected so tests run them in-process. */
export interface CaCommandDeps {
  readonly clock?: Clock;
  readonly log?: Logger;
  /** Where normal output goes (default: stdout). */
  readonly write?: (text: string) => void;
}

const iso = (ms: number) => new Date(ms).toISOString();
const pluginDirOf = (o: { pluginDir?: string }) => (o.pluginDir !== undefined ? { pluginDir: o.pluginDir } : {});
const describeCert = (c: CertificateSummary) =>
  `  subject: ${c.subject}\n  serial: ${c.serialHex}\n  valid: ${iso(c.notBefore)} .. ${iso(c.notAfter)}\n  sha256: ${c.fingerprint256}\n`;

function formatStatus(s: CaStatus): string {
  let out = `trust domain: ${s.trustDomain}\nmode: ${s.mode}\nroot rotation: ${s.rotation}\n`;
  out += `signing CA: ${s.signingCa.subject}\n`;
  out += `signing key: ${s.signingKey}\n`;
  for (const [i, r] of s.roots.entries()) out += `root ${i + 1}:\n${describeCert(r)}`;
  for (const [i, c] of s.intermediates.entries()) out += `intermediate ${i + 1}:\n${describeCert(c)}`;
  out += `outstanding SVIDs: ${Object.entries(s.outstanding)
    .map(([k, v]) => `${v} (${k})`)
    .join(', ')}\n`;
  out += `revoked serials:${s.revoked.length === 0 ? ' none' : ''}\n`;
  for (const r of s.revoked) out += `  ${r.serialHex} ${r.spiffeId} revoked ${iso(r.revokedAt)}\n`;
  for (const r of s.roots) out += r.pem;
  for (const c of s.intermediates) out += c.pem;
  return out;
}

/** What `ca init` says: the CA it made, or the one it found and kept. */
function describeInit(s: CaStatus, where: string, existed: boolean): string {
  const roots = s.roots.map((r) => `${r.subject} (sha256 ${r.fingerprint256}, valid until ${iso(r.notAfter)})`).join('; ');
  const outstanding = Object.values(s.outstanding).reduce((a, b) => a + b, 0);
  return existed
    ? `reused the existing ${s.mode} CA in ${where} (nothing changed; its root was kept)\ntrust domain: ${s.trustDomain}\nroot: ${roots}\n` +
        `root rotation: ${s.rotation}\noutstanding SVIDs: ${outstanding}\nrevoked serials: ${s.revoked.length}\n`
    : `initialized ${s.mode} CA in ${where}\ntrust domain: ${s.trustDomain}\nroot: ${roots}\n`;
}

/** The trust domain recorded in a state directory (ca.json). */
function readTrustDomain(stateDir: string): string {
  return (JSON.parse(readFileSync(join(stateDir, 'ca.json'), 'utf8')) as { trustDomain: string }).trustDomain;
}

/** Registers `meshpilot ca init|show|issue|revoke|rotate-root` on the program. */
export function registerCaCommands(program: Command, deps: CaCommandDeps = {}): Command {
  const clock = deps.clock ?? systemClock;
  const log = () => deps.log ?? createLogger({ level: 'warn' });
  const write = deps.write ?? ((t: string) => void process.stdout.write(t));
  const ca = program.command('ca').description('manage the mesh certificate authority');

  // Every failure goes through commander's error(): message to stderr, non-zero exit (a throw under exitOverride).
  const unwrapOr = <T>(cmd: Command, r: Result<T, CaError>): T => {
    if (r.ok) return r.value;
    return cmd.error(`error: ${r.error.message}`, { exitCode: 1, code: `meshpilot.ca.${r.error.kind}` });
  };
  // Commands that change the state take its lock, as a server does: with a server on the directory
  // (and no admin port to go through) or another command at work, they are refused, naming its pid.
  // A missing directory is left for openCa to report.
  const lockState = (cmd: Command, stateDir: string): (() => void) => {
    if (!existsSync(stateDir)) return () => {};
    const lock = acquireStateLock(stateDir);
    if (!lock.ok) return cmd.error(`error: ${lock.error}`, { exitCode: 1, code: 'meshpilot.ca.locked' });
    return () => lock.value.release();
  };
  // The CA key may be in a PKCS#11 token: every command that opens the CA takes the --ca-pkcs11 flags.
  const tokenRef = (cmd: Command, f: Pkcs11Flags): Pkcs11KeyRef | undefined => {
    const r = pkcs11RefFromFlags(f, log());
    return r.ok ? r.value : cmd.error(`error: ${r.error}`, { exitCode: 1, code: 'meshpilot.ca.pkcs11' });
  };
  // ca init with a token: the key is generated there (self-signed root), or imported once from the plug-in ca-key.pem.
  const prepareTokenKey = (cmd: Command, ref: Pkcs11KeyRef, pluginDir: string | undefined): string => {
    const fail = (m: string): never => cmd.error(`error: ${m}`, { exitCode: 1, code: 'meshpilot.ca.pkcs11' });
    const exists = pkcs11KeyExists(ref);
    if (!exists.ok) return fail(exists.error);
    const where = `key '${ref.keyLabel}' in token '${ref.tokenLabel}'`;
    if (exists.value) return `using the existing ${where}\n`;
    if (pluginDir === undefined) {
      const g = generatePkcs11Key(ref);
      return g.ok ? `generated ECDSA P-256 ${where} (not extractable)\n` : fail(g.error);
    }
    const keyFile = join(pluginDir, PLUGIN_FILES.caKey);
    let key;
    try {
      key = createPrivateKey(readFileSync(keyFile, 'utf8'));
    } catch (e) {
      return fail(`no ${where}, and ${keyFile} cannot be imported into it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const i = importPkcs11Key(ref, key);
    if (!i.ok) return fail(`${keyFile}: ${i.error}`);
    return `imported ${keyFile} into the token as ${where} (not extractable): delete ${keyFile} now, the CA no longer reads it\n`;
  };
  const withCa = <T>(cmd: Command, stateDir: string, o: { writes: boolean }, f: (a: CertificateAuthority) => T): T => {
    const pkcs11 = tokenRef(cmd, cmd.opts<Pkcs11Flags>());
    const release = o.writes ? lockState(cmd, stateDir) : () => {};
    try {
      const a = unwrapOr(cmd, openCa({ stateDir, clock, log: log(), ...(pkcs11 ? { pkcs11 } : {}) }));
      try {
        return f(a);
      } finally {
        a.close();
      }
    } finally {
      release();
    }
  };

  // The same for changes, which are asynchronous (a shared CA store compare-and-swaps).
  const withCaAsync = async <T>(cmd: Command, stateDir: string, f: (a: CertificateAuthority) => Promise<T>): Promise<T> => {
    const pkcs11 = tokenRef(cmd, cmd.opts<Pkcs11Flags>());
    const release = lockState(cmd, stateDir);
    try {
      const a = unwrapOr(cmd, openCa({ stateDir, clock, log: log(), ...(pkcs11 ? { pkcs11 } : {}) }));
      try {
        return await f(a);
      } finally {
        a.close();
      }
    } finally {
      release();
    }
  };

  // --state-dir, or --ca-store etcd (the CA replicas share): the flags are checked together.
  const locate = (cmd: Command, o: CaStoreFlags & { stateDir?: string }): CaLocation => {
    const l = parseCaLocation(o);
    return l.ok ? l.value : cmd.error(`error: ${l.error}`, { exitCode: 1, code: 'meshpilot.ca.flags' });
  };
  const onEtcd = async <T>(
    cmd: Command,
    settings: EtcdCaStoreSettings,
    o: Omit<EtcdCaOpen, 'clock' | 'log'>,
    f: (a: CertificateAuthority, opened: EtcdCaOpened) => T | Promise<T>,
  ): Promise<T> => {
    if (tokenRef(cmd, cmd.opts<Pkcs11Flags>()))
      return cmd.error('error: --ca-pkcs11-*: not supported with --ca-store etcd (replicas share the CA key through the store)', {
        exitCode: 1,
      });
    const r = await withEtcdCa(settings, { ...o, clock, log: log() }, f);
    return r.ok ? r.value : cmd.error(`error: ${r.error}`, { exitCode: 1, code: 'meshpilot.ca.etcd' });
  };

  ca.command('init')
    .description(
      'create the CA state: a self-signed root, or a plug-in CA from Istio-style files; with --ca-pkcs11-*, the key is in a token (generated there, or imported once from ca-key.pem)',
    )
    .option('--trust-domain <td>', 'mesh trust domain (default cluster.local)')
    .option('--plugin-dir <dir>', 'directory with ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem')
    .action(async function (
      this: Command,
      o: Pkcs11Flags & CaStoreFlags & { stateDir?: string; trustDomain?: string; pluginDir?: string },
    ) {
      let trustDomain: TrustDomain | undefined;
      if (o.trustDomain !== undefined) {
        const td = parseTrustDomain(o.trustDomain);
        if (!td.ok) this.error(`error: --trust-domain: ${td.error.message}`, { exitCode: 1 });
        else trustDomain = td.value;
      }
      const where = locate(this, o);
      if (where.kind === 'etcd') {
        const { s, opened } = await onEtcd(
          this,
          where.settings,
          { create: true, ...(trustDomain ? { trustDomain } : {}), ...pluginDirOf(o) },
          (a, opened) => ({ s: a.status(), opened }),
        );
        write(describeInit(s, opened.where, !opened.created));
        return;
      }
      const stateDir = where.stateDir;
      const pkcs11 = tokenRef(this, o);
      if (pkcs11) write(prepareTokenKey(this, pkcs11, o.pluginDir));
      const opts = { stateDir, clock, log: log(), ...(trustDomain ? { trustDomain } : {}), ...(pkcs11 ? { pkcs11 } : {}) };
      // An existing CA is opened as it is (never replaced): say so, and what it holds.
      const existed = existsSync(join(stateDir, 'ca.json'));
      const release = lockState(this, stateDir);
      let s: CaStatus;
      try {
        const a = unwrapOr(this, o.pluginDir ? createPluginCa({ ...opts, pluginDir: o.pluginDir }) : createSelfSignedCa(opts));
        s = a.status();
        a.close();
      } finally {
        release();
      }
      write(describeInit(s, stateDir, existed));
    });

  ca.command('show')
    .description('print roots, intermediates, rotation phase and revoked serials (and the CRLs with --crl)')
    .option('--crl', 'also print the current CRL(s) as PEM')
    .action(async function (this: Command, o: CaStoreFlags & { stateDir?: string; crl?: boolean; pluginDir?: string }) {
      const where = locate(this, o);
      const crls = (a: CertificateAuthority) => (o.crl ? a.crl().map((c) => c.pem) : []).join('');
      if (where.kind === 'etcd') {
        const out = await onEtcd(this, where.settings, { create: false, ...pluginDirOf(o) }, (a) => formatStatus(a.status()) + crls(a));
        write(out);
        return;
      }
      const stateDir = where.stateDir;
      // A replica whose CA lives in etcd keeps no ca.json here: ask the running replica.
      const live = existsSync(join(stateDir, 'ca.json')) ? undefined : findAdminEndpoint(stateDir);
      if (live) {
        if (o.crl) return this.error('error: --crl: not available through a running replica; use its admin port', { exitCode: 1 });
        const r = await callAdmin(live, 'GET', '/ca/status');
        if (r.status !== 200) return this.error(`meshpilot: the running control plane answered ${r.status}`, { exitCode: 1 });
        write(formatStatus(r.body as CaStatus));
        return;
      }
      withCa(this, stateDir, { writes: false }, (a) => {
        write(formatStatus(a.status()) + crls(a));
      });
    });

  ca.command('bundle')
    .description("print this trust domain's SPIFFE bundle (JSON), the initial bundle a federated mesh's trustBundleFile holds")
    .option('--refresh-hint <duration>', 'spiffe_refresh_hint to publish', '5m')
    .action(async function (this: Command, o: CaStoreFlags & { stateDir?: string; refreshHint: string; pluginDir?: string }) {
      const hint = parseDuration(o.refreshHint);
      if (!hint.ok || hint.value < 1000)
        return this.error(`error: --refresh-hint: ${hint.ok ? 'must be at least 1s' : hint.error}`, { exitCode: 1 });
      const bundle = (a: CertificateAuthority) =>
        encodeSpiffeBundle({
          rootsPem: a.trustBundle().rootsPem,
          sequence: Math.floor(clock.now() / 1000),
          refreshHintSeconds: Math.round(hint.value / 1000),
        });
      const where = locate(this, o);
      if (where.kind === 'etcd') write(await onEtcd(this, where.settings, { create: false, ...pluginDirOf(o) }, bundle));
      else withCa(this, where.stateDir, { writes: false }, (a) => write(bundle(a)));
    });

  ca.command('issue')
    .description('issue an SVID and key into OUT/key.pem, OUT/cert-chain.pem and OUT/root-cert.pem')
    .option('--namespace <ns>', 'workload namespace')
    .option('--service-account <sa>', 'workload service account')
    .option('--spiffe-id <id>', 'full SPIFFE ID instead of --namespace/--service-account')
    .requiredOption('--out <dir>', 'output directory')
    .option('--ttl <duration>', 'certificate lifetime as a Go duration, e.g. 30m, 1h, 168h (default: the CA default, 24h)')
    .addOption(new Option('--key <kind>', 'key type').choices(['ec-p256', 'rsa-2048']).default('ec-p256'))
    .option('--root-namespace <ns>', "the mesh's root namespace, where the control plane's identity is reserved", DEFAULT_ROOT_NAMESPACE)
    .action(async function (
      this: Command,
      o: CaStoreFlags & {
        stateDir?: string;
        pluginDir?: string;
        namespace?: string;
        serviceAccount?: string;
        spiffeId?: string;
        out: string;
        ttl?: string;
        key: KeyKind;
        rootNamespace: string;
      },
    ) {
      // The control plane makes its own certificate; one issued here would let its holder pose as it.
      const refuseReserved = (id: string) => {
        const parsed = parseSpiffeId(id);
        if (parsed.ok && isReservedIdentity(parsed.value, o))
          this.error(`error: ${id} is reserved for the control plane: no certificate is issued for it`, { exitCode: 1 });
      };
      let ttlMs: number | undefined;
      if (o.ttl !== undefined) {
        const d = parseDuration(o.ttl);
        if (!d.ok) return this.error(`error: --ttl: ${d.error}`, { exitCode: 1 });
        ttlMs = d.value;
      }
      const issueFrom = (a: CertificateAuthority): void => {
        let id: SpiffeId;
        if (o.spiffeId !== undefined) {
          const r = parseSpiffeId(o.spiffeId);
          if (!r.ok) return this.error(`error: --spiffe-id: ${r.error.message}`, { exitCode: 1 });
          id = r.value;
        } else {
          if (o.namespace === undefined || o.serviceAccount === undefined) {
            return this.error('error: give --namespace and --service-account, or --spiffe-id', { exitCode: 1 });
          }
          const r = workloadId(a.trustDomain, o.namespace, o.serviceAccount);
          if (!r.ok) return this.error(`error: ${r.error.message}`, { exitCode: 1 });
          id = r.value;
        }
        refuseReserved(id);
        const keys = generateKeyPair(o.key);
        const svid = unwrapOr(this, a.signSvid({ spiffeId: id, publicKey: keys.publicKey, ...(ttlMs !== undefined ? { ttlMs } : {}) }));
        mkdirSync(o.out, { recursive: true, mode: 0o700 });
        writeFileSync(join(o.out, 'key.pem'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
        writeFileSync(join(o.out, 'cert-chain.pem'), svid.chainPem.join(''));
        writeFileSync(join(o.out, 'root-cert.pem'), a.trustBundle().pem);
        write(
          `issued ${id}\nserial: ${svid.serialHex}\nvalid: ${iso(svid.notBefore)} .. ${iso(svid.notAfter)}\nwrote ${join(o.out, 'key.pem')}, cert-chain.pem, root-cert.pem\n`,
        );
      };
      const where = locate(this, o);
      // The CA in etcd, opened here: the issuance record is in etcd before the command returns, so any replica can revoke it.
      if (where.kind === 'etcd') {
        await onEtcd(this, where.settings, { create: false, ...pluginDirOf(o) }, issueFrom);
        return;
      }
      const stateDir = where.stateDir;
      // A running control plane owns the CA: it signs (it must know every serial, to revoke it later); the key stays here.
      const live = findAdminEndpoint(stateDir);
      if (live) {
        const keys = generateKeyPair(o.key);
        // With the CA in etcd the replica's state directory holds no ca.json: ask the replica for its trust domain.
        const trustDomain = existsSync(join(stateDir, 'ca.json'))
          ? readTrustDomain(stateDir)
          : ((await callAdmin(live, 'GET', '/ca/status')).body as { trustDomain?: string }).trustDomain;
        const spiffeId = o.spiffeId ?? `spiffe://${trustDomain}/ns/${o.namespace}/sa/${o.serviceAccount}`;
        refuseReserved(spiffeId);
        const r = await callAdmin(live, 'POST', '/ca/sign', {
          spiffeId,
          publicKeyPem: keys.publicKey.export({ type: 'spki', format: 'pem' }),
          ...(ttlMs !== undefined ? { ttlMs } : {}),
        });
        const body = r.body as {
          error?: string;
          chainPem: string[];
          serialHex: string;
          notBefore: number;
          notAfter: number;
          rootPem: string;
        };
        if (r.status !== 200)
          return this.error(`error: issue refused by the running control plane: ${body.error ?? r.status}`, { exitCode: 1 });
        mkdirSync(o.out, { recursive: true, mode: 0o700 });
        writeFileSync(join(o.out, 'key.pem'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
        writeFileSync(join(o.out, 'cert-chain.pem'), body.chainPem.join(''));
        writeFileSync(join(o.out, 'root-cert.pem'), body.rootPem);
        write(
          `issued ${spiffeId}\nserial: ${body.serialHex}\nvalid: ${iso(body.notBefore)} .. ${iso(body.notAfter)}\nwrote ${join(o.out, 'key.pem')}, cert-chain.pem, root-cert.pem\n`,
        );
        return;
      }
      withCa(this, stateDir, { writes: true }, issueFrom);
    });

  ca.command('revoke')
    .description('revoke an issued certificate by serial (hex); through a running server, wait until every proxy acknowledged it')
    .requiredOption('--serial <hex>', 'certificate serial number in hex (colons allowed)')
    .option('--timeout <duration>', 'with a running server: how long to wait for every proxy to ACK the new CRL (Go duration)', '10s')
    .action(async function (this: Command, o: CaStoreFlags & { stateDir?: string; serial: string; timeout: string; pluginDir?: string }) {
      const timeout = parseDuration(o.timeout);
      if (!timeout.ok) return this.error(`error: --timeout: ${timeout.error}`, { exitCode: 1 });
      const where = locate(this, o);
      if (where.kind === 'etcd') {
        // Written to etcd by compare-and-swap; every replica sees it through its watch, re-signs its CRL and pushes it.
        const r = await onEtcd(this, where.settings, { create: false, ...pluginDirOf(o) }, (a) => a.revoke(o.serial));
        const rec = unwrapOr(this, r);
        write(
          `revoked ${rec.serialHex} (${rec.spiffeId}) in etcd; every replica pushes the new CRL to its proxies (to wait for their ACKs, revoke through a replica: --state-dir of a running one)\n`,
        );
        return;
      }
      const stateDir = where.stateDir;
      // A running control plane owns the state directory: ask it, so it pushes the new CRL and reissues at once,
      // and waits (server side, where ACKs are seen) until every connected proxy has acknowledged both.
      const live = findAdminEndpoint(stateDir);
      if (live) {
        const path = `/ca/revoke?serial=${encodeURIComponent(o.serial)}&waitMs=${timeout.value}`;
        const r = await callAdmin(live, 'POST', path, undefined, timeout.value + 10_000);
        const body = r.body as {
          error?: string;
          revoked?: { serialHex: string; spiffeId: string };
          reissued?: string | null;
          propagation?: RevocationProof;
        };
        if (r.status !== 200) return this.error(`meshpilot: revoke refused by the running control plane: ${body.error ?? r.status}`);
        write(
          `revoked ${body.revoked!.serialHex} (${body.revoked!.spiffeId}) via the running control plane (pid ${live.pid})${body.reissued ? `; reissued for ${body.reissued}` : ''}\n`,
        );
        const p = body.propagation;
        if (!p) return;
        const holder = body.reissued ? ` (and ${body.reissued} its fresh SVID)` : '';
        if (p.missing.length === 0) {
          write(`${p.proxies} of ${p.proxies} connected proxies acknowledged the new CRL${holder} in ${p.elapsedMs}ms\n`);
          return;
        }
        write(
          `${p.acknowledged.length} of ${p.proxies} connected proxies acknowledged the new CRL${holder} within ${o.timeout}; not acknowledged:\n`,
        );
        for (const m of p.missing) write(`  ${m.nodeId}: ${m.reason}\n`);
        return this.error(`error: ${p.missing.length} proxies did not acknowledge the revocation within ${o.timeout}`, {
          exitCode: 1,
          code: 'meshpilot.ca.unacknowledged',
        });
      }
      await withCaAsync(this, stateDir, async (a) => {
        const r = unwrapOr(this, await a.revoke(o.serial));
        write(`revoked ${r.serialHex} (${r.spiffeId})\n`);
      });
    });

  ca.command('rotate-root')
    .description(
      'rotate the root: without --phase, every phase through the running server, each gated on every proxy ACKing it (resumable); with --phase, one step: prepare (new root trusted), activate (new root signs), retire (old root dropped)',
    )
    .requiredOption('--state-dir <dir>', 'CA state directory')
    .addOption(new Option('--phase <phase>', 'rotation phase (default: all, gated)').choices(['prepare', 'activate', 'retire']))
    .option('--force', 'retire even though SVIDs signed by the old root are still valid (they stop verifying)')
    .option('--force-retire', 'gated run: retire even though SVIDs of the old root are outstanding (disconnected workloads, node agents)')
    .option('--timeout <duration>', 'gated run: how long each gate waits for the mesh', '60s')
    .action(async function (
      this: Command,
      o: { stateDir: string; phase?: 'prepare' | 'activate' | 'retire'; force?: boolean; forceRetire?: boolean; timeout: string },
    ) {
      const live = findAdminEndpoint(o.stateDir);
      if (o.phase === undefined) {
        if (!live)
          return this.error(
            'meshpilot: a gated rotation needs a running control plane for this state directory; use --phase for offline steps',
          );
        const timeout = parseDuration(o.timeout);
        if (!timeout.ok) return this.error(`meshpilot: --timeout: ${timeout.error}`);
        // Replicas on a shared CA store: the leader drives it, gated on the proxies of every replica.
        const probe = await callAdmin(live, 'GET', '/ca/rotation');
        if (probe.status !== 404) {
          process.exitCode = await followSharedRotation(
            {
              start: async (forceRetire, gateTimeoutMs) => {
                const r = await callAdmin(live, 'POST', `/ca/rotation?forceRetire=${forceRetire}&gateTimeoutMs=${gateTimeoutMs}`);
                const b = r.body as { id?: string; error?: string };
                return r.status === 200 && b.id ? { ok: true, id: b.id } : { ok: false, error: String(b.error ?? r.status) };
              },
              view: async () => {
                const r = await callAdmin(live, 'GET', '/ca/rotation');
                const b = r.body as { rotation?: SharedRotationState; error?: string };
                return r.status === 200
                  ? { ok: true, ...(b.rotation ? { rotation: b.rotation } : {}) }
                  : { ok: false, error: String(b.error) };
              },
            },
            {
              timeoutMs: timeout.value,
              forceRetire: o.forceRetire === true,
              write,
              refuse: (m) => this.error(`meshpilot: rotate-root refused: ${m}`, { exitCode: 1, code: 'meshpilot.ca.rotation-refused' }),
              followMs: 5 * timeout.value + 120_000,
            },
          );
          return;
        }
        const code = await runGatedRotation(
          {
            status: async () => (await callAdmin(live, 'GET', '/ca/status')).body as { rotation: 'none' | 'prepared' | 'activated' },
            step: async (phase, force) => {
              const r = await callAdmin(live, 'POST', `/ca/rotate-root?phase=${phase}&force=${force}`);
              return r.status === 200 ? { ok: true } : { ok: false, error: String((r.body as { error?: string }).error ?? r.status) };
            },
            awaitRollout: async (stage, timeoutMs) =>
              (await callAdmin(live, 'GET', `/ca/await-rollout?stage=${stage}&waitMs=${timeoutMs}`, undefined, timeoutMs + 10_000))
                .body as RevocationProof,
          },
          { timeoutMs: timeout.value, forceRetire: o.forceRetire === true, write },
        );
        process.exitCode = code;
        return;
      }
      const phase = o.phase;
      if (live) {
        const r = await callAdmin(live, 'POST', `/ca/rotate-root?phase=${phase}&force=${o.force === true}`);
        const body = r.body as { error?: string; rotation?: string; signingCa?: { subject: string }; roots?: unknown[] };
        if (r.status !== 200) this.error(`meshpilot: rotate-root refused by the running control plane: ${body.error ?? r.status}`);
        write(`root rotation: ${body.rotation}\nsigning CA: ${body.signingCa?.subject}\nroots in bundle: ${body.roots?.length}\n`);
        return;
      }
      await withCaAsync(this, o.stateDir, async (a) => {
        const s = unwrapOr(this, await a.rotateRoot(phase, { force: o.force === true }));
        write(`root rotation: ${s.rotation}\nsigning CA: ${s.signingCa.subject}\nroots in bundle: ${s.roots.length}\n`);
      });
    });

  // Every command that opens the CA (offline) may need its key's token.
  for (const c of ca.commands) addPkcs11Options(c);
  // These also reach the CA replicas share in etcd, without a running replica.
  const stateDirHelp: Record<string, string> = {
    init: 'CA state directory (created 0700); or --ca-store etcd',
    show: 'CA state directory; or --ca-store etcd',
    bundle: 'CA state directory; or --ca-store etcd',
    issue: 'CA state directory (of the CA, or of a running replica); or --ca-store etcd',
    revoke: 'CA state directory (of the CA, or of a running replica); or --ca-store etcd',
  };
  for (const c of ca.commands) {
    const help = stateDirHelp[c.name()];
    if (help === undefined) continue;
    addCaLocationOptions(c, help);
    // init has its own --plugin-dir (the files to make the CA from).
    if (c.name() !== 'init')
      c.option('--plugin-dir <dir>', 'with --ca-store etcd and a plug-in CA: its files (the signing key is not in etcd)');
  }
  return ca;
}
