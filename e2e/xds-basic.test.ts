// The first real-Envoy proof: a listener, routes, clusters and endpoints over ADS (state
// of the world and delta), a route change followed without restart, and a NACKed
// resource that leaves traffic on the last good config.
import assert from 'node:assert/strict';
import { clusterEndpoints, edsCluster, httpListener, routeConfiguration } from '../src/generate/index.js';
import { unwrap } from '../src/lib/index.js';
import { RouteConfiguration, TypeUrl } from '../src/proto/index.js';
import { createSnapshot, encodedResource, type EncodedResource } from '../src/snapshot/index.js';
import { adsBootstrap, envoyPool, eventually, freePort, httpRequest, startHttpUpstream, type HttpUpstream } from './harness/index.js';
import { startTestControlPlane, type TestControlPlane } from './kit/control-plane.js';

for (const apiType of ['GRPC', 'DELTA_GRPC'] as const) {
  describe(`xDS with real Envoy (${apiType === 'GRPC' ? 'state of the world' : 'delta'})`, function () {
    this.timeout(60_000);
    const envoys = envoyPool();
    let cp: TestControlPlane;
    let a: HttpUpstream;
    let b: HttpUpstream;
    let listenPort: number;
    const nodeId = `sidecar~127.0.0.1~front-${apiType.toLowerCase()}.default~default.svc.cluster.local`;

    before(async () => {
      cp = await startTestControlPlane();
      a = await startHttpUpstream({ host: '127.0.0.1', name: 'upstream-a' });
      b = await startHttpUpstream({ host: '127.0.0.1', name: 'upstream-b' });
      listenPort = await freePort();
    });
    afterEach(function () {
      envoys.dumpLogsIfFailed(this.currentTest);
      if (this.currentTest?.state === 'failed')
        for (const l of cp.logLines.slice(-40)) console.error('control plane:', l.level, l.msg, JSON.stringify(l.fields));
    });
    after(async () => {
      await envoys.stopAll();
      await Promise.all([cp?.stop(), a?.close(), b?.close()]);
    });

    const publish = (routes: EncodedResource) => {
      const snap = unwrap(
        createSnapshot([
          httpListener('front', { host: '127.0.0.1', port: listenPort }, 'front-routes'),
          routes,
          edsCluster('a'),
          edsCluster('b'),
          clusterEndpoints('a', [{ host: '127.0.0.1', port: a.port }]),
          clusterEndpoints('b', [{ host: '127.0.0.1', port: b.port }]),
        ]),
      );
      unwrap(cp.cache.set(nodeId, snap));
      // Both protocols report the type's version as the hash of every resource of that type.
      return snap;
    };
    const get = () => httpRequest({ host: '127.0.0.1', port: listenPort, path: '/hello' });

    it('proxies a request along the routes the control plane sent', async () => {
      const snap = publish(routeConfiguration('front-routes', [{ prefix: '/', cluster: 'a' }]));
      const envoy = await envoys.start({
        name: `front-${apiType}`,
        bootstrap: adsBootstrap({ nodeId, cluster: 'front', xdsHost: cp.host, xdsPort: cp.port, apiType }),
      });
      await cp.waitForAck(nodeId, TypeUrl.Listener, snap.typeVersion(TypeUrl.Listener));
      const res = await eventually(get, { description: 'a request through Envoy' });
      assert.equal(res.status, 200);
      assert.equal(serverOf(res), 'upstream-a');
      const dump = await envoy.configDump();
      assert.match(JSON.stringify(dump), /"name":"front"/);
      assert.ok(cp.connected().some((p) => p.nodeId === nodeId && p.protocol === (apiType === 'GRPC' ? 'sotw' : 'delta')));
    });

    it('follows a route change without an Envoy restart', async () => {
      const envoy = envoys.envoys[0]!;
      const pid = envoy.pid;
      const snap = publish(routeConfiguration('front-routes', [{ prefix: '/', cluster: 'b' }]));
      await cp.waitForAck(nodeId, TypeUrl.RouteConfiguration, snap.typeVersion(TypeUrl.RouteConfiguration));
      const res = await get();
      assert.equal(serverOf(res), 'upstream-b');
      assert.equal(envoy.pid, pid);
      assert.ok(envoy.running);
    });

    it('logs a NACK with Envoy’s reason and keeps traffic on the last good config', async () => {
      const since = cp.events.length;
      publish(badRegexRoutes('front-routes', 'a'));
      const nack = await cp.waitForNack(nodeId, TypeUrl.RouteConfiguration, since);
      assert.match(nack.error ?? '', /regex|invalid|missing/i);
      const line = cp.logLines.find((l) => l.msg === 'config rejected by proxy' && l.fields.node === nodeId);
      assert.ok(line, 'the NACK is logged');
      assert.equal(line.fields.error, nack.error);
      // Still routed by the last accepted config (to b), not the rejected one.
      const res = await get();
      assert.equal(serverOf(res), 'upstream-b');
      // A good config after the bad one is taken.
      const beforeFix = cp.events.length;
      const snap = publish(routeConfiguration('front-routes', [{ prefix: '/', cluster: 'a' }]));
      await cp.waitForAck(nodeId, TypeUrl.RouteConfiguration, snap.typeVersion(TypeUrl.RouteConfiguration), beforeFix);
      assert.equal(serverOf(await get()), 'upstream-a');
      // The rejected version was sent once, never again in a loop.
      assert.equal(cp.events.slice(since).filter((e) => e.kind === 'nack').length, 1);
    });
  });
}

/** Which upstream answered: the test upstreams echo their name. */
function serverOf(res: { json?: unknown }): string | undefined {
  return (res.json as { server?: string } | undefined)?.server;
}

/** A route configuration Envoy must refuse: its regex does not compile. */
function badRegexRoutes(name: string, cluster: string): EncodedResource {
  const msg = RouteConfiguration.fromPartial({
    name,
    virtualHosts: [{ name: 'bad', domains: ['*'], routes: [{ match: { safeRegex: { regex: '([unclosed' } }, route: { cluster } }] }],
  });
  return encodedResource(TypeUrl.RouteConfiguration, name, RouteConfiguration, msg, [{ typeUrl: TypeUrl.Cluster, name: cluster }]);
}
