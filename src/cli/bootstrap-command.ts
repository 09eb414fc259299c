import { writeFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadOrCreateTokenKey, mintToken } from '../auth/index.js';
import { sidecarBootstrap } from '../bootstrap/index.js';
import { openCa } from '../ca/index.js';
import { sidecarNodeId } from '../generate/index.js';
import { CONTROL_PLANE_SERVICE_ACCOUNT, DEFAULT_ROOT_NAMESPACE, reservedServiceAccount, workloadId } from '../identity/index.js';
import { fsErrorText, systemClock } from '../lib/index.js';
import { parseDuration } from '../model/index.js';
import { loadConfig } from '../config/index.js';
import { formatDiagnostic } from '../lib/index.js';
import { parseHostPort } from './serve-command.js';
import { addCaStoreOptions, parseCaStoreFlags, readSharedTrust } from '../store/index.js';
import type { CaStoreFlags } from '../store/index.js';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { missingCaState } from './state-dir.js';

interface BootstrapFlags extends CaStoreFlags {
  stateDir?: string;
  namespace: string;
  workload: string;
  serviceAccount: string;
  address: string;
  xdsAddress: string;
  controlPlane?: string;
  rootNamespace: string;
  domain: string;
  tokenTtl: string;
  agentSocket?: string;
  certDir?: string;
  delta?: boolean;
  capture?: boolean;
  out?: string;
  config?: string[];
}

/** Adds `meshpilot bootstrap`: writes a complete Envoy bootstrap for one workload, credential included. */
export function registerBootstrapCommand(program: Command): void {
  const cmd = program
    .command('bootstrap')
    .description('write the Envoy bootstrap of a workload sidecar: control plane address, its root, and a token for the service account')
    .option('--state-dir <dir>', 'the control plane state directory (CA root and token key); or --ca-store etcd')
    .requiredOption('--namespace <ns>', 'workload namespace')
    .requiredOption('--workload <name>', 'WorkloadEntry name')
    .requiredOption('--service-account <sa>', 'service account the workload runs as')
    .requiredOption('--address <ip>', 'the workload address (it goes into the node id)')
    .option('--xds-address <host:port>', 'control plane address', '127.0.0.1:15012')
    .option(
      '--control-plane <host:port,...>',
      'every control plane replica, comma separated (replaces --xds-address): Envoy fails over to another when the one it uses goes away',
    )
    .option('--root-namespace <ns>', 'mesh root namespace (the control plane runs as <root>/sa/meshpilot)', DEFAULT_ROOT_NAMESPACE)
    .option('--domain <suffix>', 'DNS domain suffix', 'cluster.local')
    .option('--token-ttl <duration>', 'lifetime of the embedded token', '24h')
    .option('--agent-socket <path>', 'VM: secrets come from a node agent on this Unix socket, which also authenticates the sidecar')
    .option(
      '--cert-dir <dir>',
      "the SVID comes from files kept by 'meshpilot serve --secret-dir' (<dir> is <secret-dir>/<ns>/<sa>) or 'meshpilot agent --cert-dir', through Envoy's file-based SDS, and is also the sidecar's credential toward the control plane (no token); the trust bundle and CRL still come over xDS",
    )
    .option('--delta', 'use incremental (delta) xDS')
    .option(
      '--capture',
      "capture mode: the workload's traffic is redirected to Envoy by iptables ('meshpilot capture'); Envoy gets the 15001/15006 listeners and its admin on 127.0.0.1:15000",
    )
    .option('--config <paths...>', 'mesh config files or directories: refuse a workload, address or service account it does not have')
    .option('--out <file>', 'write here (mode 0600: it holds a credential) instead of stdout');
  addCaStoreOptions(cmd).action(async function (this: Command, o: BootstrapFlags) {
    const xds = parseHostPort('--xds-address', o.xdsAddress);
    const replicas = o.controlPlane === undefined ? undefined : parseControlPlane(o.controlPlane);
    if (o.certDir && o.agentSocket) this.error('meshpilot: --cert-dir and --agent-socket are exclusive: the SVID comes from one place');
    const certDir = o.certDir ? (isAbsolute(o.certDir) ? o.certDir : resolve(o.certDir)).replace(/\/+$/, '') : undefined;
    const reserved = reservedServiceAccount(o.namespace, o.serviceAccount, o);
    if (reserved) this.error(`meshpilot: ${reserved}: no sidecar runs as it`);
    if (o.config) {
      const mismatch = await checkAgainstConfig(o);
      if (mismatch) this.error(`meshpilot: ${mismatch}`);
    }
    // The root and the token key: from the state directory, or from the CA the replicas share in etcd.
    const caStore = parseCaStoreFlags(o);
    if (!caStore.ok) this.error(`meshpilot: ${caStore.error}`);
    let trustDomain: string;
    let rootCaPem: string;
    let tokenKey: () => ReturnType<typeof loadOrCreateTokenKey>;
    if (caStore.value) {
      const t = await readSharedTrust(caStore.value);
      if (!t.ok) this.error(`meshpilot: ${t.error}`);
      trustDomain = t.value.trustDomain;
      rootCaPem = t.value.rootsPem;
      const pem = t.value.tokenKeyPem;
      tokenKey = () => ({ ok: true as const, value: createPrivateKey(pem) as KeyObject });
    } else {
      if (o.stateDir === undefined) this.error('meshpilot: give --state-dir (the CA root and token key) or --ca-store etcd');
      const stateDir = o.stateDir!;
      const noCa = missingCaState(stateDir);
      if (noCa) this.error(`meshpilot: ${noCa}`);
      const ca = openCa({ stateDir });
      if (!ca.ok) this.error(`meshpilot: ${ca.error.message}`);
      trustDomain = ca.value.trustDomain;
      rootCaPem = ca.value.trustBundle().pem;
      ca.value.close();
      tokenKey = () => loadOrCreateTokenKey(stateDir);
    }
    const cpId = workloadId(trustDomain as Parameters<typeof workloadId>[0], o.rootNamespace, CONTROL_PLANE_SERVICE_ACCOUNT);
    if (!cpId.ok) this.error(`meshpilot: ${cpId.error.message}`);
    let token: string | undefined;
    // With --cert-dir the SVID in the files is the credential (renewed there, reloaded by Envoy): no token that would expire.
    if (!o.agentSocket && !certDir) {
      const ttl = parseDuration(o.tokenTtl);
      if (!ttl.ok) this.error(`meshpilot: --token-ttl: ${ttl.error}`);
      const key = tokenKey();
      if (!key.ok) this.error(`meshpilot: ${key.error}`);
      token = await mintToken({
        key: key.value,
        namespace: o.namespace,
        serviceAccount: o.serviceAccount,
        ttlMs: ttl.value,
        clock: systemClock,
        rootNamespace: o.rootNamespace,
      });
    }
    const bootstrap = sidecarBootstrap({
      nodeId: sidecarNodeId(o.address, o.workload, o.namespace, o.domain),
      cluster: o.workload,
      xdsHost: xds.host,
      xdsPort: xds.port,
      ...(replicas ? { xdsEndpoints: replicas } : {}),
      tls: { rootCaPem, controlPlaneId: cpId.value },
      token,
      agentSocket: o.agentSocket,
      certDir,
      apiType: o.delta ? 'DELTA_GRPC' : 'GRPC',
      capture: o.capture === true,
    });
    const text = JSON.stringify(bootstrap, null, 2) + '\n';
    if (o.out) {
      try {
        writeFileSync(o.out, text, { mode: 0o600 });
      } catch (e) {
        this.error(`meshpilot: --out ${o.out}: cannot write: ${fsErrorText(e)}`);
      }
    } else process.stdout.write(text);
  });
}

/** Parses `--control-plane A,B,C` (each host:port); throws naming the entry that is wrong. */
export function parseControlPlane(value: string): { host: string; port: number }[] {
  const entries = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (entries.length === 0) throw new Error('--control-plane: no replica given (expected host:port[,host:port...])');
  const replicas = entries.map((e) => parseHostPort('--control-plane', e));
  const seen = new Set<string>();
  for (const r of replicas) {
    const k = `${r.host}:${r.port}`;
    if (seen.has(k)) throw new Error(`--control-plane: ${k} is listed twice`);
    seen.add(k);
  }
  return replicas;
}

/**
 * With --config: the workload must be in the config, at that address, running as that service
 * account. A bootstrap for anything else would only be refused when Envoy connects, far from here.
 */
async function checkAgainstConfig(o: BootstrapFlags): Promise<string | undefined> {
  const r = await loadConfig(o.config ?? []);
  if (!r.model) {
    const errors = r.diagnostics.filter((d) => d.severity === 'error').slice(0, 5);
    return `--config: the config does not load:\n  ${errors.map(formatDiagnostic).join('\n  ')}`;
  }
  const w = r.model.workload(o.namespace, o.workload);
  if (!w) return `--workload: no WorkloadEntry ${o.namespace}/${o.workload} in the config (${(o.config ?? []).join(', ')})`;
  const where = w.origin ? ` (${w.origin.file}:${w.origin.line})` : '';
  if (w.address !== o.address) return `--address: ${o.namespace}/${o.workload} has address ${w.address}${where}, not ${o.address}`;
  const sa = w.serviceAccount;
  if (sa.namespace !== o.namespace || sa.name !== o.serviceAccount) {
    return `--service-account: ${o.namespace}/${o.workload} runs as ${sa.namespace}/${sa.name}${where}, not ${o.namespace}/${o.serviceAccount}`;
  }
  return undefined;
}
