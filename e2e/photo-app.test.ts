// DESIGN.md scenarios 1 and 2 with real Envoy: the photo app over mutual TLS with SPIFFE
// identities issued and pushed by meshpilot, and an impostor refused by secure naming.
import assert from 'node:assert/strict';
import { outboundCluster, SDS_DEFAULT, SDS_ROOTCA } from '../src/generate/index.js';
import { generateKeyPair } from '../src/ca/index.js';
import { mustSpiffeId } from '../src/identity/index.js';
import { unwrap } from '../src/lib/index.js';
import { envoyPool, eventually, type EnvoyProcess } from './harness/index.js';
import { startMesh, type TestMesh } from './kit/mesh.js';
import {
  APP_PORT,
  backend,
  backendHost,
  datastore,
  datastoreHost,
  frontend,
  ids,
  photoAppConfig,
  photoAppPolicy,
  SERVICE_PORT,
  xfccUri,
} from './kit/photo-app.js';
import { impostorBootstrap } from './kit/impostor.js';

describe('photo app over mTLS with real Envoy sidecars (scenarios 1 and 2)', function () {
  this.timeout(90_000);
  let mesh: TestMesh;
  const extra = envoyPool();
  const sidecars = new Map<string, EnvoyProcess>();

  before(async () => {
    mesh = await startMesh({ 'mesh.yaml': photoAppConfig(), 'policy.yaml': photoAppPolicy() }, { apps: [frontend, backend, datastore] });
    await Promise.all([frontend, backend, datastore].map(async (w) => sidecars.set(w.name, await mesh.startSidecar(w))));
  });
  afterEach(function () {
    mesh.dumpIfFailed(this.currentTest);
    extra.dumpLogsIfFailed(this.currentTest);
  });
  after(async () => {
    await extra.stopAll();
    await mesh?.stop();
  });

  it('photo-frontend → photo-backend works, and the backend app sees the frontend’s SPIFFE ID', async () => {
    const res = await eventually(() => mesh.call(frontend, backendHost, '/photos'), { description: 'frontend → backend' });
    assert.equal(res.status, 200);
    const seen = res.json as { server: string; headers: Record<string, string> };
    assert.equal(seen.server, 'photo-backend');
    assert.equal(xfccUri(seen.headers), ids.frontend);
    assert.match(seen.headers['x-forwarded-client-cert'] ?? '', new RegExp(`By=${ids.backend}`));
  });

  it('photo-backend → datastore works, and the datastore sees the backend’s SPIFFE ID', async () => {
    const res = await mesh.call(backend, datastoreHost, '/rows');
    assert.equal(res.status, 200);
    const seen = res.json as { server: string; headers: Record<string, string> };
    assert.equal(seen.server, 'datastore');
    assert.equal(xfccUri(seen.headers), ids.backend);
  });

  it('the hops are TLS, by Envoy’s own stats, and the inbound side accepts nothing else', async () => {
    const [fe, be] = [sidecars.get(frontend.name)!, sidecars.get(backend.name)!];
    const cluster = outboundCluster(SERVICE_PORT, 'photo-backend.photo-ns.svc.cluster.local');
    assert.ok(((await fe.stat(`cluster.${cluster}.ssl.handshake`)) ?? 0) >= 1, 'client side handshakes');
    assert.ok(((await be.stat(`listener.${backend.address}_${SERVICE_PORT}.ssl.handshake`)) ?? 0) >= 1, 'server side handshakes');
    // Plaintext to the backend sidecar's inbound port is refused.
    const plain = await fetchPlain(backend.address, SERVICE_PORT);
    assert.notEqual(plain, 200);
  });

  it('config_dump shows the SAN matcher (secure naming) and the SDS secrets by Istio’s names', async () => {
    const fe = sidecars.get(frontend.name)!;
    const dump = JSON.stringify(await fe.configDump());
    assert.ok(dump.includes(`"name":"${SDS_DEFAULT}"`), 'default secret');
    assert.ok(dump.includes(`"name":"${SDS_ROOTCA}"`), 'ROOTCA secret');
    assert.ok(dump.includes(`"exact":"${ids.backend}"`), 'SAN matcher for photo-backend');
    assert.ok(dump.includes(`outbound|${SERVICE_PORT}||photo-backend.photo-ns.svc.cluster.local`));
  });

  it('an impostor with a valid mesh SVID for another service account is refused (scenario 2)', async () => {
    const realBackend = sidecars.get(backend.name)!;
    await realBackend.stop();
    // The impostor holds a real SVID of this mesh, for photo-ns/sa/impostor, and takes the backend's address.
    const keys = generateKeyPair('ec-p256');
    const svid = unwrap(
      mesh.mp.ca.signSvid({ spiffeId: mustSpiffeId('spiffe://cluster.local/ns/photo-ns/sa/impostor'), publicKey: keys.publicKey }),
    );
    const impostor = await extra.start({
      name: 'impostor',
      bootstrap: impostorBootstrap({
        address: backend.address,
        port: SERVICE_PORT,
        chainPem: svid.chainPem.join(''),
        keyPem: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        rootPem: mesh.mp.ca.trustBundle().pem,
        upstreamPort: APP_PORT,
        upstreamHost: backend.address,
      }),
    });
    const fe = sidecars.get(frontend.name)!;
    const cluster = outboundCluster(SERVICE_PORT, 'photo-backend.photo-ns.svc.cluster.local');
    const before = (await fe.stat(`cluster.${cluster}.ssl.fail_verify_san`)) ?? 0;
    const res = await mesh.call(frontend, backendHost, '/photos');
    assert.equal(res.status, 503, 'the client sidecar refuses the impostor');
    assert.ok(((await fe.stat(`cluster.${cluster}.ssl.fail_verify_san`)) ?? 0) > before, 'Envoy counts the SAN mismatch');
    // The impostor never got the request: its app-side cluster saw nothing.
    assert.equal((await impostor.stat('cluster.app.upstream_rq_total')) ?? 0, 0);
    // The real backend comes back and works again.
    await impostor.stop();
    sidecars.set(backend.name, await mesh.startSidecar(backend));
    const ok = await eventually(() => mesh.call(frontend, backendHost), { description: 'frontend → real backend again' });
    assert.equal(ok.status, 200);
    assert.equal(xfccUri((ok.json as { headers: Record<string, string> }).headers), ids.frontend);
  });
});

/** Sends a plaintext HTTP request; returns the status, or an error code when the connection fails. */
async function fetchPlain(host: string, port: number): Promise<number | string> {
  const { httpRequest } = await import('./harness/index.js');
  try {
    return (await httpRequest({ host, port, path: '/', timeoutMs: 2_000 })).status;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? 'failed';
  }
}
