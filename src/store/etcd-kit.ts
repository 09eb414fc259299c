// Test support: a real etcd cluster (Debian's /usr/bin/etcd) of one or three members on
// loopback, with TLS and client-certificate authentication on both the client and the peer
// ports. Certificates are made with openssl in a temp dir. Not exported from index: tests only.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';

/** The etcd binary the kit runs; ETCD_BIN overrides it. */
export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';

/** PEM files for a TLS client of the cluster. */
export interface EtcdTlsFiles {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/** A running test cluster. */
export interface EtcdCluster {
  /** Client URLs (https), one per member, in member order. */
  readonly endpoints: readonly string[];
  /** A client certificate the cluster accepts, and the CA that verifies the members. */
  readonly tls: EtcdTlsFiles;
  /** The temp dir that holds data, certificates and logs. */
  readonly dir: string;
  /** Makes a client certificate signed by a CA the cluster does not trust (caFile still verifies the members). */
  foreignClientTls(): EtcdTlsFiles;
  /** An etcd3 client over TLS to the given members (all by default); the caller closes it. */
  client(members?: readonly number[]): Etcd3;
  /** SIGKILLs member i and waits for it to exit. */
  kill(i: number): Promise<void>;
  /** Starts member i again (same data dir) and waits until it answers. */
  restart(i: number): Promise<void>;
  /** The member's log file, for diagnostics. */
  logFile(i: number): string;
  /** Kills every member and removes the temp dir. */
  stop(): Promise<void>;
}

/** Asks the OS for a free loopback port (closed before return; etcd binds it right after). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function openssl(args: readonly string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stdout}${r.stderr}`);
}

/** Makes a self-signed P-256 CA in dir as <name>.crt and <name>.key. */
function makeCa(dir: string, name: string): { crt: string; key: string } {
  const crt = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', crt, '-days', '2', '-subj', `/O=meshpilot test/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]); // prettier-ignore
  return { crt, key };
}

/** Makes a P-256 leaf signed by ca with the given extensions; returns its cert and key files. */
function makeLeaf(dir: string, name: string, ca: { crt: string; key: string }, ext: string): { crt: string; key: string } {
  const crt = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, ext);
  openssl([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    key,
    '-out',
    csr,
    '-subj',
    `/O=meshpilot test/CN=${name}`,
  ]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.crt, '-CAkey', ca.key, '-set_serial', `0x${Date.now().toString(16)}${Math.floor(Math.random() * 1e6).toString(16)}`, '-days', '2', '-out', crt, '-extfile', extFile]); // prettier-ignore
  return { crt, key };
}

const MEMBER_EXT =
  'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n';
const CLIENT_EXT = 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n';

/** Builds an etcd3 client over TLS from PEM files. */
export function tlsClient(hosts: readonly string[], tls: EtcdTlsFiles): Etcd3 {
  return new Etcd3({
    hosts: [...hosts],
    credentials: {
      rootCertificate: readFileSync(tls.caFile),
      certChain: readFileSync(tls.certFile),
      privateKey: readFileSync(tls.keyFile),
    },
    dialTimeout: 3000,
  });
}

interface Member {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly log: string;
  proc?: ChildProcess;
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test that crashes or forgets stop() must not leave etcd running or files behind.
  process.on('exit', () => {
    for (const p of live) p.kill('SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
}

/** Starts an etcd cluster of 1 or 3 members on loopback with TLS and client-certificate auth; resolves once every member answers. */
export async function startEtcdCluster(opts: { readonly members: 1 | 3 }): Promise<EtcdCluster> {
  // A free port can be taken by another process between our probe and etcd's bind: try again
  // with fresh ports (bounded).
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(opts.members);
    } catch (e) {
      last = e;
      if (!/exited with/.test((e as Error).message)) throw e;
    }
  }
  throw last;
}

async function startOnce(memberCount: number): Promise<EtcdCluster> {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), 'meshpilot-etcd-'));
  dirs.add(dir);
  const pki = join(dir, 'pki');
  mkdirSync(pki, { mode: 0o700 });
  const ca = makeCa(pki, 'etcd-ca');
  const member = makeLeaf(pki, 'etcd-member', ca, MEMBER_EXT);
  const client = makeLeaf(pki, 'etcd-client', ca, CLIENT_EXT);
  const tls: EtcdTlsFiles = { caFile: ca.crt, certFile: client.crt, keyFile: client.key };

  const members: Member[] = [];
  for (let i = 0; i < memberCount; i++) {
    members.push({
      name: `m${i}`,
      clientPort: await freeLoopbackPort(),
      peerPort: await freeLoopbackPort(),
      dataDir: join(dir, `m${i}.data`),
      log: join(dir, `m${i}.log`),
    });
  }
  const initialCluster = members.map((m) => `${m.name}=https://127.0.0.1:${m.peerPort}`).join(',');
  const endpoints = members.map((m) => `https://127.0.0.1:${m.clientPort}`);
  const token = `meshpilot-${process.pid}-${Date.now()}`;

  const startMember = (m: Member): void => {
    const out = openSync(m.log, 'a');
    const proc = spawn(
      ETCD_BIN,
      [
        '--name', m.name, '--data-dir', m.dataDir, '--logger', 'zap', '--log-outputs', 'stderr',
        '--listen-client-urls', `https://127.0.0.1:${m.clientPort}`,
        '--advertise-client-urls', `https://127.0.0.1:${m.clientPort}`,
        '--listen-peer-urls', `https://127.0.0.1:${m.peerPort}`,
        '--initial-advertise-peer-urls', `https://127.0.0.1:${m.peerPort}`,
        '--initial-cluster', initialCluster, '--initial-cluster-state', 'new', '--initial-cluster-token', token,
        '--cert-file', member.crt, '--key-file', member.key, '--client-cert-auth', '--trusted-ca-file', ca.crt,
        '--peer-cert-file', member.crt, '--peer-key-file', member.key, '--peer-client-cert-auth', '--peer-trusted-ca-file', ca.crt,
        // Short raft timings so that a killed leader is replaced quickly in tests.
        '--heartbeat-interval', '50', '--election-timeout', '500',
      ], // prettier-ignore
      { stdio: ['ignore', out, out] },
    );
    closeSync(out);
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    m.proc = proc;
  };

  const waitHealthy = async (idx: readonly number[]): Promise<void> => {
    const deadline = Date.now() + 60_000;
    for (const i of idx) {
      const m = members[i]!;
      const c = tlsClient([endpoints[i]!], tls);
      try {
        for (;;) {
          if (m.proc?.exitCode !== null && m.proc?.exitCode !== undefined)
            throw new Error(`etcd member ${m.name} exited with ${m.proc.exitCode}; see ${m.log}:\n${tail(m.log)}`);
          try {
            // A linearizable read needs a leader and a quorum: the member is really serving.
            await c.get('meshpilot-kit-health').string();
            break;
          } catch (e) {
            if (Date.now() > deadline)
              throw new Error(`etcd member ${m.name} not healthy after 60 s (${(e as Error).message}); see ${m.log}`, { cause: e });
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      } finally {
        c.close();
      }
    }
  };

  let foreignCount = 0;
  const cluster: EtcdCluster = {
    endpoints,
    tls,
    dir,
    foreignClientTls() {
      const other = makeCa(pki, `foreign-ca-${foreignCount}`);
      const leaf = makeLeaf(pki, `foreign-client-${foreignCount++}`, other, CLIENT_EXT);
      return { caFile: ca.crt, certFile: leaf.crt, keyFile: leaf.key };
    },
    client: (idx) => tlsClient(idx ? idx.map((i) => endpoints[i]!) : endpoints, tls),
    async kill(i) {
      const p = members[i]!.proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
    },
    async restart(i) {
      await cluster.kill(i);
      startMember(members[i]!);
      await waitHealthy([i]);
    },
    logFile: (i) => members[i]!.log,
    async stop() {
      for (let i = 0; i < members.length; i++) await cluster.kill(i);
      rmSync(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
  };

  try {
    for (const m of members) startMember(m);
    await waitHealthy(members.map((_, i) => i));
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

/** The --etcd-* flags of a test cluster (all members, or the ones listed), with its client certificate or another's. */
export function etcdFlags(cluster: EtcdCluster, o: { readonly members?: readonly number[]; readonly tls?: EtcdTlsFiles } = {}): string[] {
  const endpoints = o.members ? o.members.map((i) => cluster.endpoints[i]!) : cluster.endpoints;
  const tls = o.tls ?? cluster.tls;
  return ['--etcd-endpoints', endpoints.join(','), '--etcd-ca', tls.caFile, '--etcd-cert', tls.certFile, '--etcd-key', tls.keyFile];
}
