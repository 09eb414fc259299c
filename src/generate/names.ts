// Istio's names for what meshpilot generates (DESIGN.md "Names"), in one place.
import type { Service } from '../model/index.js';

/** Secret names served over SDS: the proxy's own SVID and key, and the validation context. */
export const SDS_DEFAULT = 'default';
export const SDS_ROOTCA = 'ROOTCA';

/** The port of the outbound HTTP listener on each workload's address (Istio's outbound capture port). */
export const OUTBOUND_HTTP_PORT = 15001;
export const OUTBOUND_HTTP_LISTENER = 'outbound_http';
export const OUTBOUND_HTTP_ROUTE = 'outbound_http';

/** Capture mode's listeners, as Istio names them: all outbound traffic arrives on 15001, all inbound on 15006. */
export const VIRTUAL_OUTBOUND_LISTENER = 'virtualOutbound';
export const VIRTUAL_INBOUND_LISTENER = 'virtualInbound';
export const CAPTURE_OUTBOUND_PORT = 15001;
export const CAPTURE_INBOUND_PORT = 15006;
/** Istio's clusters for destinations outside the mesh: to the original destination (ALLOW_ANY), or nowhere (REGISTRY_ONLY). */
export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';
/**
 * The source Envoy binds toward its local app in capture mode (Istio's inbound passthrough address):
 * capture's first OUTPUT rule lets lo traffic from it through (the same value as capture's INBOUND_PASSTHROUGH_SOURCE).
 */
export const INBOUND_PASSTHROUGH_SOURCE = '127.0.0.6';

/** Capture mode's outbound route configuration of one HTTP port: named by the port number, as Istio does. */
export const captureRouteName = (port: number): string => String(port);

/** `<service>.<namespace>.svc.<domain>` */
export const serviceHost = (s: Pick<Service, 'name' | 'namespace'>, domainSuffix: string): string =>
  `${s.name}.${s.namespace}.svc.${domainSuffix}`;

/** `outbound|<port>||<host>`: the cluster a client sidecar uses to reach a service port. */
export const outboundCluster = (port: number, host: string): string => `outbound|${port}||${host}`;

/** `outbound|<port>|<subset>|<host>`: the cluster of one DestinationRule subset of a service port. */
export const subsetCluster = (port: number, subset: string, host: string): string => `outbound|${port}|${subset}|${host}`;

/** `inbound|<port>||`: the cluster a sidecar uses to reach its local app on the workload port. */
export const inboundCluster = (workloadPort: number): string => `inbound|${workloadPort}||`;

/** The inbound listener of one service port on a workload's address. */
export const inboundListener = (port: number): string => `inbound|${port}`;

/** The outbound listener of one TCP service port. */
export const outboundTcpListener = (port: number, host: string): string => `outbound_tcp|${port}||${host}`;

/** Istio's SNI for a service port: `outbound_.<port>_._.<host>`. */
export const outboundSni = (port: number, host: string): string => `outbound_.${port}_._.${host}`;

/** The Envoy node id of a sidecar: `sidecar~<ip>~<workload>.<namespace>~<namespace>.svc.<domain>`. */
export const sidecarNodeId = (ip: string, workload: string, namespace: string, domainSuffix: string): string =>
  `sidecar~${ip}~${workload}.${namespace}~${namespace}.svc.${domainSuffix}`;

/** What a node id names: the workload and namespace, and the IP it claims. The claim grants nothing by itself. */
export interface NodeClaim {
  readonly ip: string;
  readonly workload: string;
  readonly namespace: string;
}

/** Parses a sidecar node id; undefined when it does not have Istio's shape. */
export function parseNodeId(nodeId: string): NodeClaim | undefined {
  const parts = nodeId.split('~');
  if (parts.length !== 4 || parts[0] !== 'sidecar') return undefined;
  const [, ip, podDotNs] = parts as [string, string, string, string];
  const dot = podDotNs.lastIndexOf('.');
  if (dot <= 0 || dot === podDotNs.length - 1) return undefined;
  return { ip, workload: podDotNs.slice(0, dot), namespace: podDotNs.slice(dot + 1) };
}
