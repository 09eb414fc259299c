// The etcd connection every command that talks to etcd shares: the flags, their checks
// (each error names the flag and the file), and the client built from them. One place, so
// that `serve`, `apply`, `get`, `delete` and `ca ...` spell the flags the same way.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Etcd3 } from 'etcd3';
import type { Command } from 'commander';
import { err, ok } from '../lib/index.js';
import type { Result } from '../lib/index.js';
import { readSealingKeyFile } from './sealing.js';

/** The default key prefix under which meshpilot keeps everything in etcd. */
export const DEFAULT_ETCD_PREFIX = '/meshpilot/';

/** The raw flag values as commander hands them over. */
export interface EtcdConnectionFlags {
  readonly etcdEndpoints?: string;
  readonly etcdCa?: string;
  readonly etcdCert?: string;
  readonly etcdKey?: string;
  readonly etcdPrefix?: string;
}

/** A checked connection: endpoints, the PEM bytes read from the files, and the key prefix. */
export interface EtcdConnectionConfig {
  readonly endpoints: readonly string[];
  readonly tls?: { readonly ca: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
  /** Always ends with '/'. */
  readonly prefix: string;
}

/** Adds the --etcd-* flags to a command (serve, apply, get, delete, ca ...); adding them twice is harmless. */
export function addEtcdConnectionOptions(cmd: Command): Command {
  // serve gets these from both the config store and the CA store wiring: register once.
  if (cmd.options.some((o) => o.long === '--etcd-endpoints')) return cmd;
  return cmd
    .option('--etcd-endpoints <urls>', 'etcd client URLs, comma separated (e.g. https://10.0.0.1:2379,https://10.0.0.2:2379)')
    .option('--etcd-ca <file>', 'PEM file of the CA that signed the etcd servers (required for https endpoints)')
    .option('--etcd-cert <file>', 'PEM client certificate for etcd client-certificate authentication (with --etcd-key)')
    .option('--etcd-key <file>', 'PEM private key of --etcd-cert')
    .option('--etcd-prefix <prefix>', 'key prefix for everything meshpilot keeps in etcd', DEFAULT_ETCD_PREFIX);
}

/** The CA store flags as commander hands them over. */
export interface CaStoreFlags extends EtcdConnectionFlags {
  readonly caStore?: string;
  readonly caStoreKey?: string;
  readonly ephemeral?: boolean;
}

/** Adds --ca-store and --ca-store-key (and the --etcd-* flags) to a command. */
export function addCaStoreOptions(cmd: Command): Command {
  addEtcdConnectionOptions(cmd);
  return cmd
    .option('--ca-store <kind>', "where the CA state lives: 'dir' (the state directory, default) or 'etcd' (shared by replicas)", 'dir')
    .option(
      '--ca-store-key <file>',
      'with --ca-store etcd: 256-bit key that seals the CA keys in etcd (make one with: openssl rand -base64 32 > ca-store.key); the same file on every replica',
    );
}

/** Checks the CA store flags: undefined for the state directory, the etcd settings otherwise; every problem names its flag. */
export function parseCaStoreFlags(flags: CaStoreFlags): Result<EtcdCaStoreSettings | undefined> {
  const kind = flags.caStore ?? 'dir';
  if (kind !== 'dir' && kind !== 'etcd') return err(`--ca-store: expected 'dir' or 'etcd', got ${JSON.stringify(kind)}`);
  if (kind === 'dir') {
    return flags.caStoreKey !== undefined ? err('--ca-store-key: only used with --ca-store etcd') : ok(undefined);
  }
  const problems: string[] = [];
  if (flags.ephemeral) problems.push('--ephemeral: cannot be combined with --ca-store etcd (the CA lives in etcd)');
  const conn = parseEtcdConnection(flags);
  if (!conn.ok) problems.push(conn.error);
  else if (!conn.value) problems.push('--ca-store etcd: needs --etcd-endpoints (and --etcd-ca, --etcd-cert, --etcd-key for TLS)');
  let key: Buffer | undefined;
  if (flags.caStoreKey === undefined) problems.push('--ca-store etcd: needs --ca-store-key FILE, the key that seals the CA keys in etcd');
  else {
    const k = readSealingKeyFile('--ca-store-key', flags.caStoreKey);
    if (k.ok) key = k.value;
    else problems.push(k.error);
  }
  if (problems.length > 0 || !conn.ok || !conn.value || !key) return err(problems.join('\n'));
  return ok({ connection: conn.value, sealingKey: key, sealingKeySource: `--ca-store-key ${flags.caStoreKey}` });
}

/** The etcd CA store settings the flags produce (EtcdCaStoreOptions in ca-store-wiring.ts). */
export interface EtcdCaStoreSettings {
  readonly connection: EtcdConnectionConfig;
  readonly sealingKey: Buffer;
  readonly sealingKeySource: string;
}

type PemKind = 'CERTIFICATE' | 'PRIVATE KEY';

/** Reads a PEM file given by a flag; the error names the flag, the file and what is wrong. */
function readPemFlag(flag: string, file: string, kind: PemKind): Result<Buffer> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'is a directory'
            : (e as Error).message;
    return err(`${flag} ${file}: cannot read it (${why})`);
  }
  const text = bytes.toString('latin1');
  // Keys come as "PRIVATE KEY", "EC PRIVATE KEY" or "RSA PRIVATE KEY"; certificates only as "CERTIFICATE".
  const re =
    kind === 'CERTIFICATE'
      ? /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/
      : /-----BEGIN (?:EC |RSA )?PRIVATE KEY-----[\s\S]+?-----END (?:EC |RSA )?PRIVATE KEY-----/;
  if (!re.test(text))
    return err(
      `${flag} ${file}: not a PEM ${kind === 'CERTIFICATE' ? 'certificate' : 'private key'} (expected a -----BEGIN ${kind}----- block)`,
    );
  return ok(bytes);
}

/** Checks the flags and reads the files; undefined when --etcd-endpoints is absent. Every problem is reported, one per line. */
export function parseEtcdConnection(flags: EtcdConnectionFlags): Result<EtcdConnectionConfig | undefined> {
  const problems: string[] = [];
  if (flags.etcdEndpoints === undefined) {
    for (const f of ['etcdCa', 'etcdCert', 'etcdKey'] as const)
      if (flags[f] !== undefined) problems.push(`--${f.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} needs --etcd-endpoints`);
    return problems.length ? err(problems.join('\n')) : ok(undefined);
  }
  const endpoints = flags.etcdEndpoints
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (endpoints.length === 0) problems.push('--etcd-endpoints: no endpoint given (expected https://host:port[,https://host:port])');
  const schemes = new Set<string>();
  for (const e of endpoints) {
    let u: URL;
    try {
      u = new URL(e);
    } catch {
      problems.push(`--etcd-endpoints: ${JSON.stringify(e)} is not a URL (expected https://host:port)`);
      continue;
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:')
      problems.push(`--etcd-endpoints: ${e} must use https:// (or http:// without TLS)`);
    else if (u.port === '' || (u.pathname !== '/' && u.pathname !== ''))
      problems.push(`--etcd-endpoints: ${e} must be scheme://host:port with no path`);
    schemes.add(u.protocol);
  }
  if (schemes.size > 1) problems.push('--etcd-endpoints: mixes https:// and http:// endpoints; use one scheme');
  const https = schemes.has('https:');
  if (!https && (flags.etcdCa ?? flags.etcdCert ?? flags.etcdKey) !== undefined)
    problems.push('--etcd-ca/--etcd-cert/--etcd-key: TLS files given for http:// endpoints; use https:// endpoints');
  if (https && flags.etcdCa === undefined)
    problems.push('--etcd-ca: required for https:// endpoints (the CA that signed the etcd servers)');
  if ((flags.etcdCert === undefined) !== (flags.etcdKey === undefined))
    problems.push(flags.etcdCert === undefined ? '--etcd-key: given without --etcd-cert' : '--etcd-cert: given without --etcd-key');

  const read = (flag: string, file: string | undefined, kind: PemKind): Buffer | undefined => {
    if (file === undefined || !https) return undefined;
    const r = readPemFlag(flag, file, kind);
    if (!r.ok) {
      problems.push(r.error);
      return undefined;
    }
    return r.value;
  };
  const ca = read('--etcd-ca', flags.etcdCa, 'CERTIFICATE');
  const cert = read('--etcd-cert', flags.etcdCert, 'CERTIFICATE');
  const key = read('--etcd-key', flags.etcdKey, 'PRIVATE KEY');

  let prefix = flags.etcdPrefix ?? DEFAULT_ETCD_PREFIX;
  if (prefix === '' || !prefix.startsWith('/'))
    problems.push(`--etcd-prefix: ${JSON.stringify(prefix)} must start with '/' (e.g. ${DEFAULT_ETCD_PREFIX})`);
  if (!prefix.endsWith('/')) prefix += '/';

  if (problems.length > 0) return err(problems.join('\n'));
  return ok({ endpoints, ...(https && ca ? { tls: { ca, ...(cert && key ? { cert, key } : {}) } } : {}), prefix });
}

/** Options for the client: how long one unary call may take before it fails (a stream is not bounded). */
export interface EtcdClientOptions {
  readonly callTimeoutMs?: number;
}

/** Builds an etcd3 client from a checked config; it does not connect until first used. */
export function createEtcdClient(cfg: EtcdConnectionConfig, opts: EtcdClientOptions = {}): Etcd3 {
  const callTimeoutMs = opts.callTimeoutMs ?? 5000;
  // Loaded on first use: etcd3 and its dependencies add about 0.6 s to every CLI start otherwise,
  // and most commands never talk to etcd. (etcd3 is CommonJS, so require loads it synchronously.)
  const { Etcd3: Client } = createRequire(import.meta.url)('etcd3') as typeof import('etcd3');
  return new Client({
    hosts: [...cfg.endpoints],
    ...(cfg.tls
      ? {
          credentials: {
            rootCertificate: cfg.tls.ca,
            ...(cfg.tls.cert && cfg.tls.key ? { certChain: cfg.tls.cert, privateKey: cfg.tls.key } : {}),
          },
        }
      : {}),
    dialTimeout: callTimeoutMs,
    // Unary calls get a deadline so that an unreachable etcd is reported, not waited on forever;
    // watches are long-lived streams and must not have one.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
  });
}

/**
 * Builds a client and proves etcd answers (a linearizable read under the prefix); on failure the
 * client is closed and the error names every endpoint and the cause (e.g. a refused client certificate).
 */
export async function connectEtcd(cfg: EtcdConnectionConfig, opts: EtcdClientOptions = {}): Promise<Result<Etcd3>> {
  const client = createEtcdClient(cfg, opts);
  try {
    await client.get(`${cfg.prefix}.probe`).string();
    return ok(client);
  } catch (e) {
    client.close();
    return err(`etcd unreachable at ${cfg.endpoints.join(', ')}: ${describeEtcdError(e)}`);
  }
}

/** A one-line cause for an etcd client error (the gRPC messages are long and repetitive). */
export function describeEtcdError(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0]!.slice(0, 300);
}
