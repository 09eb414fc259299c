// `make demo`: a real Envoy driven by meshpilot's xDS server, with what it proves printed
// as it happens. It exits 0 only if every claim held.
import { clusterEndpoints, edsCluster, httpListener, routeConfiguration } from '../../src/generate/index.js';
import { unwrap } from '../../src/lib/index.js';
import { TypeUrl } from '../../src/proto/index.js';
import { createSnapshot, type EncodedResource } from '../../src/snapshot/index.js';
import { adsBootstrap, envoyPool, eventually, freePort, httpRequest, startHttpUpstream } from '../harness/index.js';
import { startTestControlPlane } from '../kit/control-plane.js';

const claims: { claim: string; held: boolean; detail: string }[] = [];
const prove = (claim: string, held: boolean, detail: string) => {
  claims.push({ claim, held, detail });
  console.log(`${held ? 'PROVED' : 'FAILED'}  ${claim}${detail ? `  (${detail})` : ''}`);
};

async function main(): Promise<number> {
  const envoys = envoyPool();
  const cp = await startTestControlPlane();
  const v1 = await startHttpUpstream({ host: '127.0.0.1', name: 'app-v1' });
  const v2 = await startHttpUpstream({ host: '127.0.0.1', name: 'app-v2' });
  try {
    const port = await freePort();
    const nodeId = 'sidecar~127.0.0.1~demo.default~default.svc.cluster.local';
    const publish = (routes: EncodedResource) => {
      const snap = unwrap(
        createSnapshot([
          httpListener('demo', { host: '127.0.0.1', port }, 'demo-routes'),
          routes,
          edsCluster('v1'),
          edsCluster('v2'),
          clusterEndpoints('v1', [{ host: '127.0.0.1', port: v1.port }]),
          clusterEndpoints('v2', [{ host: '127.0.0.1', port: v2.port }]),
        ]),
      );
      unwrap(cp.cache.set(nodeId, snap));
      return snap;
    };
    console.log(`meshpilot demo: control plane on 127.0.0.1:${cp.port}, Envoy listener on 127.0.0.1:${port}\n`);
    const first = publish(routeConfiguration('demo-routes', [{ prefix: '/', cluster: 'v1' }]));
    const envoy = await envoys.start({ name: 'demo-envoy', bootstrap: adsBootstrap({ nodeId, cluster: 'demo', xdsHost: cp.host, xdsPort: cp.port }) });
    await cp.waitForAck(nodeId, TypeUrl.Listener, first.typeVersion(TypeUrl.Listener));
    const who = async () => ((await httpRequest({ host: '127.0.0.1', port, path: '/' })).json as { server?: string } | undefined)?.server;
    const a = await eventually(who, { description: 'a request through Envoy' });
    prove('Envoy took its listener, routes, clusters and endpoints over ADS and proxied a request', a === 'app-v1', `answered by ${a}`);

    const pid = envoy.pid;
    const since = cp.events.length;
    const second = publish(routeConfiguration('demo-routes', [{ prefix: '/', cluster: 'v2' }]));
    await cp.waitForAck(nodeId, TypeUrl.RouteConfiguration, second.typeVersion(TypeUrl.RouteConfiguration), since);
    const b = await who();
    prove('a route change reached Envoy and was ACKed, with no restart', b === 'app-v2' && envoy.pid === pid, `answered by ${b}, same pid ${pid}`);

    const stats = await envoy.stats('^(cluster_manager\\.cds|listener_manager\\.lds)\\.update_(success|rejected)$');
    const accepted = [...stats].every(([name, v]) => (name.endsWith('rejected') ? v === 0 : v >= 1));
    prove('Envoy counted every CDS and LDS update as accepted, none rejected', accepted && stats.size === 4, JSON.stringify(Object.fromEntries(stats)));
  } finally {
    await envoys.stopAll();
    await Promise.all([cp.stop(), v1.close(), v2.close()]);
  }
  const failed = claims.filter((c) => !c.held).length;
  console.log(`\n${claims.length - failed} of ${claims.length} claims proved`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error('demo failed:', e);
    process.exit(1);
  },
);
