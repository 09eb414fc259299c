// A real Envoy inside a test host's namespace, as uid 1337, with static capture listeners: the
// shapes the generators must emit for capture mode, validated here against Envoy 1.36. Its admin
// endpoint is a Unix socket, because the test process lives in another network namespace.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { resolveEnvoyBin } from '../harness/index.js';
import { PROXY_UID, TMP_PREFIX, type NsProcess, type TestHost } from './netns.js';

const ORIGINAL_DST_FILTER = {
  name: 'envoy.filters.listener.original_dst',
  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst' },
};
const ROUTER = {
  name: 'envoy.filters.http.router',
  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
};
// One line per connection or request, with the restored original destination, for assertions and failure dumps.
const ACCESS_LOG = [
  {
    name: 'envoy.access_loggers.stdout',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
      log_format: {
        text_format_source: {
          inline_string: 'ACCESS %DOWNSTREAM_REMOTE_ADDRESS% -> %DOWNSTREAM_LOCAL_ADDRESS% %UPSTREAM_CLUSTER% %RESPONSE_CODE%\n',
        },
      },
    },
  },
];

function hcm(statPrefix: string, cluster: string): object {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      stat_prefix: statPrefix,
      access_log: ACCESS_LOG,
      route_config: {
        name: statPrefix,
        virtual_hosts: [{ name: statPrefix, domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster } }] }],
      },
      http_filters: [ROUTER],
    },
  };
}

function tcpProxy(statPrefix: string, cluster: string): object {
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
      stat_prefix: statPrefix,
      cluster,
      access_log: ACCESS_LOG,
    },
  };
}

/** A service the outbound listener knows: its VIP and port, and where its one endpoint is. */
export interface OutboundService {
  readonly host: string;
  readonly vip: string;
  readonly port: number;
  readonly endpoint: string;
}

/** The outbound cluster name, as DESIGN.md (Istio) spells it. */
export const outboundCluster = (s: OutboundService) => `outbound|${s.port}||${s.host}`;

/** The HTTP stat prefix of a service's outbound chain (dots would split Envoy's stat name). */
export const outboundStatPrefix = (s: OutboundService) => `outbound_${s.port}_${s.host.replace(/\./g, '_')}`;

/**
 * Returns a static bootstrap with Istio's two capture listeners: `virtualOutbound` on 15001 (the
 * original_dst listener filter restores the address the app dialled; a filter chain per service
 * VIP:port, and a default chain that passes anything else through to its original destination) and
 * `virtualInbound` on 15006 (a filter chain per app port, forwarding to the original destination from
 * 127.0.0.6 so that capture lets it reach the app).
 */
export function captureBootstrap(o: {
  services: readonly OutboundService[];
  inboundPorts: readonly number[];
  adminSocket: string;
}): object {
  const outboundChains = o.services.map((s) => ({
    name: outboundCluster(s),
    filter_chain_match: { prefix_ranges: [{ address_prefix: s.vip, prefix_len: 32 }], destination_port: s.port },
    filters: [hcm(outboundStatPrefix(s), outboundCluster(s))],
  }));
  const inboundChains = o.inboundPorts.map((p) => ({
    name: `inbound|${p}||`,
    filter_chain_match: { destination_port: p },
    filters: [hcm(`inbound_${p}`, `inbound|${p}||`)],
  }));
  const originalDst = (name: string, extra: object = {}) => ({
    name,
    type: 'ORIGINAL_DST',
    lb_policy: 'CLUSTER_PROVIDED',
    connect_timeout: '2s',
    ...extra,
  });
  const virtualInbound = {
    name: 'virtualInbound',
    address: { socket_address: { address: '0.0.0.0', port_value: 15006 } },
    listener_filters: [ORIGINAL_DST_FILTER],
    // No default chain: a captured connection to a port the mesh does not serve is closed.
    filter_chains: inboundChains,
  };
  return {
    admin: { address: { pipe: { path: o.adminSocket } } },
    static_resources: {
      listeners: [
        {
          name: 'virtualOutbound',
          address: { socket_address: { address: '0.0.0.0', port_value: 15001 } },
          listener_filters: [ORIGINAL_DST_FILTER],
          filter_chains: outboundChains,
          default_filter_chain: { name: 'PassthroughFilterChain', filters: [tcpProxy('PassthroughCluster', 'PassthroughCluster')] },
        },
        // Envoy refuses a listener without filter chains: a workload serving nothing gets none.
        ...(inboundChains.length === 0 ? [] : [virtualInbound]),
      ],
      clusters: [
        ...o.services.map((s) => ({
          name: outboundCluster(s),
          type: 'STATIC',
          connect_timeout: '2s',
          load_assignment: {
            cluster_name: outboundCluster(s),
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: s.endpoint, port_value: s.port } } } }] }],
          },
        })),
        originalDst('PassthroughCluster'),
        // Istio's inbound passthrough address: capture's first OUTPUT rule lets lo traffic from it through.
        ...o.inboundPorts.map((p) =>
          originalDst(`inbound|${p}||`, { upstream_bind_config: { source_address: { address: '127.0.0.6', port_value: 0 } } }),
        ),
      ],
    },
  };
}

/** A sidecar Envoy running inside a test host. */
export interface NetnsEnvoy {
  readonly proc: NsProcess;
  /** Returns counters and gauges whose name matches the regex. */
  stats(filter: string): Promise<Map<string, number>>;
  /** Returns one counter or gauge (0 when Envoy has not created it). */
  stat(name: string): Promise<number>;
  /** Access log lines so far. */
  accessLog(): string[];
  stop(): Promise<void>;
}

function adminGet(socketPath: string, pathAndQuery: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: pathAndQuery, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`admin ${pathAndQuery}: timeout`)));
    req.on('error', reject);
  });
}

/** Starts Envoy in `host` as uid 1337 on a capture bootstrap and waits until it is LIVE (bounded). */
export async function startNetnsEnvoy(host: TestHost, bootstrap: (adminSocket: string) => object): Promise<NetnsEnvoy> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${process.pid}-envoy-${host.role}-`));
  // Envoy runs as the proxy user: it must read its bootstrap and create its admin socket here.
  fs.chownSync(dir, PROXY_UID, PROXY_UID);
  const adminSocket = path.join(dir, 'admin.sock');
  const config = path.join(dir, 'bootstrap.json');
  fs.writeFileSync(config, JSON.stringify(bootstrap(adminSocket), null, 2), { mode: 0o644 });
  const proc = host.spawn(
    `envoy-${host.role}`,
    [
      resolveEnvoyBin(),
      '--disable-hot-restart',
      '--concurrency',
      '1',
      '-c',
      config,
      '--log-level',
      'info',
      '--file-flush-interval-msec',
      '100',
    ],
    { uid: PROXY_UID },
  );
  const stop = async () => {
    await proc.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (!proc.running) {
      await stop();
      throw new Error(`envoy in ${host.ns} exited; output:\n${proc.logs(60)}`);
    }
    const ready = await adminGet(adminSocket, '/ready').catch(() => undefined);
    if (ready?.status === 200) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`envoy in ${host.ns} not LIVE within 15 s; output:\n${proc.logs(60)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  async function stats(filter: string): Promise<Map<string, number>> {
    const r = await adminGet(adminSocket, `/stats?format=json&filter=${encodeURIComponent(filter)}`);
    const parsed = JSON.parse(r.body) as { stats?: Array<{ name?: string; value?: unknown }> };
    const m = new Map<string, number>();
    for (const s of parsed.stats ?? []) if (typeof s.name === 'string' && typeof s.value === 'number') m.set(s.name, s.value);
    return m;
  }
  return {
    proc,
    stats,
    async stat(name) {
      return (await stats(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`)).get(name) ?? 0;
    },
    accessLog: () =>
      proc
        .logs()
        .split('\n')
        .filter((l) => l.startsWith('ACCESS ')),
    stop,
  };
}
