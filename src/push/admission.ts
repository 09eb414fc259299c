// Admission of a proxy: what its node id claims is checked against the mesh config and
// against the identity it proved, before anything is built or cached for it.
import { isIP } from 'node:net';
import { CERT_DIR_METADATA, INTERCEPTION_MODE_METADATA, SDS_CLUSTER_METADATA } from '../bootstrap/index.js';
import { parseNodeId, type SecretSource } from '../generate/index.js';
import { parseTrustDomain, workloadId, type SpiffeId } from '../identity/index.js';
import { err, ok, type Result } from '../lib/index.js';
import { workloadPortFor, type MeshModel, type WorkloadEntry } from '../model/index.js';
import type { ProxyKey, WatchRefusal } from '../snapshot/index.js';

/** Envoy node ids of real sidecars are well under this; a longer one is refused before anything is kept for it. */
export const MAX_NODE_ID_LENGTH = 512;

/** A proxy let in: which workload it serves, the identity that runs it, and where its secrets come from. */
export interface AdmittedProxy {
  readonly nodeId: string;
  readonly workloadKey: string;
  readonly workload: WorkloadEntry;
  readonly spiffeId: SpiffeId;
  readonly source: SecretSource;
  /** Whether iptables capture sends the workload's traffic through this proxy (it gets 15001/15006 listeners). */
  readonly capture: boolean;
}

/** Reads the interception mode a proxy declares (Istio's node metadata): capture for REDIRECT, loopback for NONE or none. */
export function interceptionOf(metadata: Readonly<Record<string, unknown>> | undefined): Result<boolean, WatchRefusal> {
  const mode = metadata?.[INTERCEPTION_MODE_METADATA];
  if (mode === undefined || mode === 'NONE') return ok(false);
  if (mode === 'REDIRECT') return ok(true);
  // TPROXY keeps the client's source address, which needs rules and privileges meshpilot capture does not set up.
  return err({ reason: `node metadata ${INTERCEPTION_MODE_METADATA} ${JSON.stringify(mode)} is not supported (REDIRECT or NONE)` });
}

// The directory only says where the proxy reads its own SVID; it grants nothing, since meshpilot
// never sends such a proxy a key. It is embedded in Envoy config, so only a plain absolute path is taken.
const CERT_DIR = /^\/[A-Za-z0-9._/-]{1,1023}$/;

/** Reads where a proxy's SVID comes from (node metadata): a node agent's SDS cluster, a certificate directory, or ADS. */
export function secretSourceOf(metadata: Readonly<Record<string, unknown>> | undefined): Result<SecretSource, WatchRefusal> {
  const sdsCluster = metadata?.[SDS_CLUSTER_METADATA];
  const certDir = metadata?.[CERT_DIR_METADATA];
  if (certDir !== undefined) {
    if (typeof certDir !== 'string' || !CERT_DIR.test(certDir) || certDir.split('/').includes('..') || /^\/+$/.test(certDir))
      return err({ reason: `node metadata ${CERT_DIR_METADATA} must be an absolute path without '..'` });
    if (sdsCluster !== undefined) return err({ reason: `node metadata sets both ${SDS_CLUSTER_METADATA} and ${CERT_DIR_METADATA}` });
    return ok({ certDir: certDir.replace(/\/+$/, '') });
  }
  return ok(typeof sdsCluster === 'string' && sdsCluster !== '' ? { sdsCluster } : {});
}

/** The SPIFFE ID a workload runs as, or undefined if the trust domain or names cannot make one. */
export function identityOf(model: MeshModel, w: WorkloadEntry): SpiffeId | undefined {
  const td = parseTrustDomain(model.settings.trustDomain);
  if (!td.ok) return undefined;
  const id = workloadId(td.value, w.serviceAccount.namespace, w.serviceAccount.name);
  return id.ok ? id.value : undefined;
}

// The config loader refuses port == targetPort for sidecar workloads only in a loopback mesh; in a
// capture mesh, a proxy that still comes up in loopback mode would leave such an app reachable
// without it, so it is refused (fail closed) and told to run captured.
/** Why a loopback-mode sidecar cannot serve this workload (its app listens on a service port), or undefined. */
export function loopbackExposure(model: MeshModel, w: WorkloadEntry): string | undefined {
  for (const s of model.servicesOf(w)) {
    for (const port of s.ports) {
      if (w.sidecar && workloadPortFor(port, w) === port.port)
        return (
          `workload ${w.namespace}/${w.name} serves service ${s.namespace}/${s.name} port ${port.port} on the app's own port: ` +
          'a loopback-mode sidecar would leave the app reachable without it; run it captured (meshpilot bootstrap --capture)'
        );
    }
  }
  return undefined;
}

/**
 * Checks a connecting proxy: its node id has Istio's sidecar shape and a sane length, names a
 * workload of the mesh, claims that workload's address and the namespace's DNS domain, and
 * (when it proved an identity) the workload runs as that identity. What a proxy claims grants nothing.
 */
export function admitProxy(model: MeshModel, proxy: ProxyKey): Result<AdmittedProxy, WatchRefusal> {
  const nodeId = proxy.nodeId;
  if (nodeId.length > MAX_NODE_ID_LENGTH) return err({ reason: `node id is ${nodeId.length} characters; at most ${MAX_NODE_ID_LENGTH}` });
  const claim = parseNodeId(nodeId);
  if (!claim) return err({ reason: `node id ${JSON.stringify(nodeId)} is not sidecar~<ip>~<workload>.<namespace>~<domain>` });
  const workload = model.workload(claim.namespace, claim.workload);
  if (!workload) return err({ reason: `no workload ${claim.namespace}/${claim.workload} in the mesh config` });
  if (isIP(claim.ip) === 0) return err({ reason: `node id ip ${JSON.stringify(claim.ip)} is not an IP address` });
  if (claim.ip !== workload.address) {
    return err({ reason: `node id claims ip ${claim.ip}; workload ${claim.namespace}/${claim.workload} has address ${workload.address}` });
  }
  const domain = `${claim.namespace}.svc.${model.settings.domainSuffix}`;
  const claimedDomain = nodeId.split('~')[3];
  if (claimedDomain !== domain) return err({ reason: `node id claims domain ${JSON.stringify(claimedDomain)}; expected ${domain}` });
  const runsAs = identityOf(model, workload);
  if (!runsAs) return err({ reason: `workload ${claim.namespace}/${claim.workload} has no valid SPIFFE ID` });
  if (proxy.identity !== undefined && proxy.identity !== runsAs) {
    return err({
      reason: `proven identity ${proxy.identity} does not run workload ${claim.namespace}/${claim.workload} (runs as ${runsAs})`,
    });
  }
  const source = secretSourceOf(proxy.metadata);
  if (!source.ok) return source;
  const capture = interceptionOf(proxy.metadata);
  if (!capture.ok) return capture;
  if (!capture.value) {
    const exposed = loopbackExposure(model, workload);
    if (exposed !== undefined) return err({ reason: exposed });
  }
  return ok({
    nodeId,
    workloadKey: `${workload.namespace}/${workload.name}`,
    workload,
    spiffeId: runsAs,
    source: source.value,
    capture: capture.value,
  });
}
