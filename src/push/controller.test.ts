import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createEphemeralCa } from '../ca/index.js';
import { parseConfigText } from '../config/index.js';
import { GENERATORS, type ResourceGenerator } from '../generate/index.js';
import { createInboundPolicySource } from '../policy/index.js';
import { createManualClock, unwrap } from '../lib/index.js';
import { diffModels, type MeshModel } from '../model/index.js';
import { createRecordingLogger } from '../observability/index.js';
import { TypeUrl, typeShortName } from '../proto/index.js';
import { createSvidStore, realTimers } from '../secrets/index.js';
import { createSnapshotCache, type Snapshot } from '../snapshot/index.js';
import { createPushController, MAX_NODE_ID_LENGTH } from './index.js';

const example = (f: string) => readFileSync(fileURLToPath(new URL(`../../../examples/photo-app/${f}`, import.meta.url)), 'utf8');
const MESH = example('mesh.yaml');
const FRONTEND = 'sidecar~127.0.0.11~photo-frontend.photo-ns~photo-ns.svc.cluster.local';
const BACKEND = 'sidecar~127.0.0.12~photo-backend.photo-ns~photo-ns.svc.cluster.local';
const DATASTORE = 'sidecar~127.0.0.13~datastore.datastore-ns~datastore-ns.svc.cluster.local';

const doc = (yaml: string) => `${MESH}\n---\n${yaml}`;
const parse = (yaml: string): MeshModel => {
  const r = parseConfigText(yaml, 'mesh.yaml');
  assert.ok(r.model, JSON.stringify(r.diagnostics));
  return r.model;
};

const NEW_SERVICE = `apiVersion: v1
kind: Service
metadata: { name: photo-extra, namespace: photo-ns }
spec:
  selector: { app: photo-backend }
  ports: [{ name: http-extra, port: 9090, targetPort: 8090 }]`;
const UNUSED_ACCOUNT = `apiVersion: v1
kind: ServiceAccount
metadata: { name: nobody, namespace: photo-ns }`;
const policyIn = (ns: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-all-get, namespace: ${ns} }
spec:
  action: DENY
  rules: [{ to: [{ operation: { methods: [GET] } }] }]`;

/** A controller over the photo app, recording which types each push rebuilt for which proxy. */
async function setup(opts: { failFor?: string } = {}) {
  const clock = createManualClock(Date.now());
  const log = createRecordingLogger();
  const ca = createEphemeralCa({ clock });
  const svids = createSvidStore({ ca, ttlMs: 3_600_000, renewal: { atFraction: 0.5, jitterFraction: 0 }, clock, timers: realTimers, log });
  const cache = createSnapshotCache({ log });
  const rebuilt: string[] = [];
  const generators: ResourceGenerator[] = GENERATORS.map((g) => ({
    typeUrl: g.typeUrl,
    affectedBy: g.affectedBy,
    generate(node, ctx, memo) {
      if (opts.failFor !== undefined && node.workloadKey === opts.failFor && ctx.model.services.length > 3) {
        throw new Error(`cannot build ${g.typeUrl}`);
      }
      rebuilt.push(`${node.workloadKey.split('/')[1]} ${typeShortName[g.typeUrl]}`);
      return g.generate(node, ctx, memo);
    },
  }));
  const errors: string[] = [];
  const built: string[] = [];
  const push = createPushController({
    cache,
    ca,
    svids,
    policy: createInboundPolicySource({ fetchJwks: () => undefined, log }),
    serveKeys: true,
    log,
    clock,
    timers: realTimers,
    generators,
    stats: { onBuildError: (node, cause) => errors.push(`${node}: ${cause}`), onBuilt: (node) => built.push(node) },
  });
  let model = parse(MESH);
  push.setModel(model, { kind: 'config', changes: diffModels(undefined, model) });
  push.flush();
  const offSvid = svids.onChanged((workloadKey) => push.request({ kind: 'svid', workloadKey }));
  const latest = new Map<string, Snapshot>();
  const connect = (nodeId: string, identity?: string, metadata?: Record<string, unknown>) =>
    unwrap(push.watch({ nodeId, identity, metadata }, (s) => latest.set(nodeId, s)));
  return {
    push,
    cache,
    svids,
    log,
    errors,
    built,
    latest,
    connect,
    /** Applies a new config and runs the push now; returns what it rebuilt, sorted. */
    change(yaml: string) {
      const next = parse(yaml);
      push.setModel(next, { kind: 'config', changes: diffModels(model, next) });
      model = next;
      rebuilt.length = 0;
      push.flush();
      return [...rebuilt].sort();
    },
    event(e: Parameters<typeof push.request>[0]) {
      rebuilt.length = 0;
      push.request(e);
      push.flush();
      return [...rebuilt].sort();
    },
    /** Waits until every wanted SVID is issued and pushed. */
    async settle() {
      await svids.settled();
      push.flush();
    },
    close() {
      offSvid();
      push.close();
      svids.close();
      ca.close();
    },
  };
}

describe('push controller', () => {
  let t: Awaited<ReturnType<typeof setup>>;
  beforeEach(async () => (t = await setup()));
  afterEach(() => t.close());

  it('builds a connecting proxy whole, from what is current, once its certificate is issued', async () => {
    t.connect(FRONTEND);
    await t.settle();
    const snap = t.latest.get(FRONTEND);
    assert.ok(snap);
    assert.deepEqual([...snap.typeUrls()].map((u) => typeShortName[u]).sort(), ['cds', 'eds', 'lds', 'rds', 'sds']);
    assert.deepEqual([...snap.resources(TypeUrl.Secret).keys()].sort(), ['ROOTCA', 'default']);
  });

  it('rebuilds per change kind only the types and proxies it concerns', async () => {
    t.connect(FRONTEND);
    t.connect(BACKEND);
    t.connect(DATASTORE);
    await t.settle();
    const all = (types: string[]) =>
      ['datastore', 'photo-backend', 'photo-frontend'].flatMap((w) => types.map((ty) => `${w} ${ty}`)).sort();
    // A new Service: clusters, endpoints, listeners and routes of everyone; never secrets.
    assert.deepEqual(t.change(doc(NEW_SERVICE)), all(['cds', 'eds', 'lds', 'rds']));
    // A policy in photo-ns: the listeners of photo-ns workloads only.
    assert.deepEqual(t.change(doc(`${NEW_SERVICE}\n---\n${policyIn('photo-ns')}`)), ['photo-backend lds', 'photo-frontend lds']);
    // A policy in datastore-ns: datastore's listeners only.
    assert.deepEqual(t.change(doc(`${NEW_SERVICE}\n---\n${policyIn('photo-ns')}\n---\n${policyIn('datastore-ns')}`)), ['datastore lds']);
    // Trust material: every proxy's secrets; one workload's new SVID: that proxy's secrets.
    assert.deepEqual(t.event({ kind: 'trust' }), all(['sds']));
    assert.deepEqual(t.event({ kind: 'svid', workloadKey: 'photo-ns/photo-backend' }), ['photo-backend sds']);
    assert.deepEqual(t.event({ kind: 'jwks' }), all(['lds']));
  });

  it('rebuilds nothing for a change that concerns no proxy', async () => {
    t.connect(FRONTEND);
    await t.settle();
    assert.deepEqual(t.change(doc(UNUSED_ACCOUNT)), []);
  });

  it('builds a proxy that reconnects after a change from the current config, not what it had', async () => {
    const off = t.connect(BACKEND);
    await t.settle();
    const before = t.latest.get(BACKEND)!.typeVersion(TypeUrl.Listener);
    off();
    assert.deepEqual(t.cache.nodeIds(), [], 'released on disconnect');
    t.change(doc(policyIn('photo-ns')));
    t.latest.clear();
    t.connect(BACKEND);
    await t.settle();
    assert.notEqual(t.latest.get(BACKEND)!.typeVersion(TypeUrl.Listener), before);
  });

  it('never serves a replaced certificate: after a reissue the proxy gets a new serial', async () => {
    t.connect(FRONTEND);
    await t.settle();
    const first = t.svids.current('photo-ns/photo-frontend')!.serialHex;
    assert.equal(t.svids.reissueSerial(first), 'photo-ns/photo-frontend');
    assert.equal(t.svids.current('photo-ns/photo-frontend'), undefined, 'the revoked one is no longer read');
    await t.settle();
    const second = t.svids.current('photo-ns/photo-frontend')!.serialHex;
    assert.notEqual(second, first);
    assert.ok(t.latest.get(FRONTEND)!.resources(TypeUrl.Secret).get('default'));
  });

  it('refuses malformed, oversized and false node ids before anything is kept', () => {
    const refuse = (nodeId: string, identity?: string) => {
      const r = t.push.watch({ nodeId, identity }, () => {});
      assert.equal(r.ok, false, nodeId.slice(0, 80));
      return r.ok ? '' : r.error.reason;
    };
    assert.match(refuse('photo-frontend'), /is not sidecar~<ip>~<workload>\.<namespace>~<domain>/);
    assert.match(refuse(`${FRONTEND}${'x'.repeat(MAX_NODE_ID_LENGTH)}`), /at most 512/);
    assert.match(refuse('sidecar~127.0.0.99~photo-frontend.photo-ns~photo-ns.svc.cluster.local'), /claims ip 127\.0\.0\.99.*127\.0\.0\.11/);
    assert.match(refuse('sidecar~not-an-ip~photo-frontend.photo-ns~photo-ns.svc.cluster.local'), /is not an IP address/);
    assert.match(refuse('sidecar~127.0.0.11~photo-frontend.photo-ns~evil.example'), /claims domain "evil\.example"/);
    assert.match(refuse('sidecar~127.0.0.11~nobody.photo-ns~photo-ns.svc.cluster.local'), /no workload photo-ns\/nobody/);
    assert.match(refuse(FRONTEND, 'spiffe://cluster.local/ns/datastore-ns/sa/datastore'), /does not run workload/);
    assert.deepEqual(t.cache.nodeIds(), []);
    assert.equal(t.push.proxies().length, 0);
    assert.equal(t.svids.size(), 0);
  });

  it('returns to its size after many distinct proxies connect and disconnect', async () => {
    // Every connection is a distinct stream of a known workload; nothing outlives its stream.
    for (let round = 0; round < 50; round++) {
      const offs = [FRONTEND, BACKEND, DATASTORE].map((n) => t.connect(n));
      await t.settle();
      for (const off of offs) off();
    }
    assert.deepEqual(t.cache.nodeIds(), []);
    assert.equal(t.push.proxies().length, 0);
    assert.equal(t.svids.size(), 0, 'keys of disconnected workloads are dropped');
    // Refused node ids never added anything either.
    for (let i = 0; i < 1_000; i++) t.push.watch({ nodeId: `sidecar~10.0.${i >> 8}.${i & 255}~x${i}.ns~ns.svc.cluster.local` }, () => {});
    assert.deepEqual(t.cache.nodeIds(), []);
  });

  it('keeps a proxy on its last config when its workload leaves the mesh', async () => {
    t.connect(DATASTORE);
    await t.settle();
    const before = t.latest.get(DATASTORE)!.version;
    // The WorkloadEntry `datastore` is renamed: that workload is gone, its Service keeps a backend.
    const withoutDatastore = MESH.replace(
      '  name: datastore\n  namespace: datastore-ns\nspec:\n  address',
      '  name: datastore-2\n  namespace: datastore-ns\nspec:\n  address',
    );
    assert.notEqual(withoutDatastore, MESH);
    t.change(withoutDatastore);
    assert.equal(t.latest.get(DATASTORE)!.version, before);
    assert.ok(t.log.lines.some((l) => l.msg === 'workload left the mesh; proxy keeps its last config'));
  });
  it('keeps a proxy whose build fails on its last config, logged and counted, while the others get theirs', async () => {
    t.close();
    t = await setup({ failFor: 'photo-ns/photo-backend' });
    t.connect(FRONTEND);
    t.connect(BACKEND);
    await t.settle();
    const backendBefore = t.latest.get(BACKEND)!.version;
    const frontendBefore = t.latest.get(FRONTEND)!.version;
    t.change(doc(NEW_SERVICE));
    assert.equal(t.latest.get(BACKEND)!.version, backendBefore);
    assert.notEqual(t.latest.get(FRONTEND)!.version, frontendBefore);
    assert.equal(t.errors.length, 1);
    assert.match(t.errors[0]!, /photo-backend.*cannot build/);
    const logged = t.log.lines.find((l) => l.msg === 'proxy config not generated; it keeps its last config');
    assert.equal(logged?.fields.workload, 'photo-ns/photo-backend');
    assert.deepEqual(logged?.fields.objects, ['added Service photo-ns/photo-extra']);
  });

  it('reports a build failure until a build succeeds again (onBuildError, then onBuilt)', async () => {
    t.close();
    t = await setup({ failFor: 'photo-ns/photo-backend' });
    t.connect(BACKEND);
    await t.settle();
    assert.ok(t.built.includes(BACKEND));
    t.built.length = 0;
    t.change(doc(NEW_SERVICE));
    assert.equal(t.errors.length, 1);
    assert.equal(t.built.length, 0);
    t.change(MESH);
    assert.deepEqual(t.built, [BACKEND], 'the next good build is reported, so status clears the error');
  });

  // Two Services selecting one workload with the same targetPort once gave two `inbound|8080||`
  // clusters: the snapshot was refused ("duplicate resource names") and the proxy stayed on its old config.
  it('gives two Services that select one workload with the same targetPort one inbound cluster, and publishes', async () => {
    t.connect(BACKEND);
    await t.settle();
    const twoServices = doc(`apiVersion: v1
kind: Service
metadata: { name: photo-backend-alias, namespace: photo-ns }
spec:
  selector: { app: photo-backend }
  ports: [{ name: http, port: 9080, targetPort: 8080 }, { name: http-alt, port: 9091, targetPort: 8080 }]`);
    t.change(twoServices);
    assert.deepEqual(t.errors, []);
    const snap = t.latest.get(BACKEND)!;
    const clusters = [...snap.resources(TypeUrl.Cluster).keys()];
    assert.deepEqual(
      clusters.filter((n) => n.startsWith('inbound|')),
      ['inbound|8080||'],
    );
    assert.ok(clusters.includes('outbound|9080||photo-backend-alias.photo-ns.svc.cluster.local'));
    assert.ok(clusters.includes('outbound|9091||photo-backend-alias.photo-ns.svc.cluster.local'));
    assert.deepEqual([...snap.resources(TypeUrl.Listener).keys()].filter((n) => n.startsWith('inbound|')).sort(), [
      'inbound|9080',
      'inbound|9091',
    ]);
    assert.equal(snap.danglingReferences().length, 0);
  });

  it('gives a proxy that declares capture (INTERCEPTION_MODE: REDIRECT) the capture listeners, and the others loopback ones', async () => {
    t.connect(FRONTEND, undefined, { INTERCEPTION_MODE: 'REDIRECT' });
    t.connect(BACKEND);
    await t.settle();
    const listeners = (node: string) => [...t.latest.get(node)!.resources(TypeUrl.Listener).keys()].sort();
    assert.deepEqual(listeners(FRONTEND), ['virtualInbound', 'virtualOutbound']);
    assert.deepEqual(listeners(BACKEND), ['inbound|9080', 'outbound_http']);
    assert.deepEqual([...t.latest.get(FRONTEND)!.resources(TypeUrl.RouteConfiguration).keys()], ['9080']);
    // The outbound traffic policy is a MeshConfig setting: changing it rebuilds the captured proxy's listener.
    const before = t.latest.get(FRONTEND)!.version;
    t.change(MESH.replace('trustDomain: cluster.local', 'trustDomain: cluster.local\n  outboundTrafficPolicy: { mode: REGISTRY_ONLY }'));
    assert.notEqual(t.latest.get(FRONTEND)!.version, before);
  });

  it('keeps a loopback proxy on its last config when its app comes to listen on the service port (capture mesh)', async () => {
    t.connect(BACKEND);
    await t.settle();
    const before = t.latest.get(BACKEND)!.version;
    t.change(
      MESH.replaceAll('targetPort: 8080', 'targetPort: 9080').replace(
        'trustDomain: cluster.local',
        'trustDomain: cluster.local\n  captureMode: iptables',
      ),
    );
    assert.equal(t.latest.get(BACKEND)!.version, before);
    assert.ok(t.log.lines.some((l) => l.msg === 'loopback sidecar cannot guard its app; proxy keeps its last config'));
  });
});
