// SPIFFE federation between two meshpilot meshes with real Envoy: trust domains a.example and
// b.example, each with its own control plane, bundle endpoint and sidecars. Sidecars validate
// peers with Envoy's SPIFFE validator, one bundle per trust domain.
import assert from 'node:assert/strict';
import { eventually } from './harness/index.js';
import { forgeWithRoot, issueFor, mtlsRequest, startFederation, workloadYaml, type FederatedSide } from './kit/federation.js';
import { loopbackAddress, xfccUri } from './kit/photo-app.js';
import type { TestWorkload } from './kit/mesh.js';
import type { EnvoyProcess } from './harness/index.js';
import { leafSerials } from './kit/certs.js';
import { formatCounts, startLoad, type LoadCounts } from './kit/load.js';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';

const client: TestWorkload = { name: 'client', namespace: 'shop', address: loopbackAddress(41) };
const intruder: TestWorkload = { name: 'intruder', namespace: 'shop', address: loopbackAddress(42) };
const backend: TestWorkload = { name: 'backend', namespace: 'store', address: loopbackAddress(51) };
const ids = {
  client: 'spiffe://a.example/ns/shop/sa/client',
  intruder: 'spiffe://a.example/ns/shop/sa/intruder',
  backend: 'spiffe://b.example/ns/store/sa/backend',
};
const SIDECAR_PORT = 9080;
const B_BACKEND_HOST = 'backend.store.b.example:9080';
const B_WRONG_SAN_HOST = 'backend-wrong-san.store.b.example:9080';

// Cross-mesh services: A reaches B's backend through B's sidecar, over mTLS, with secure naming
// expecting B's identity (Istio's ServiceEntry with subjectAltNames). The second entry names a
// B identity the backend does not run as: A's sidecar must refuse the connection.
function crossMeshEntries(): string {
  const entry = (name: string, host: string, san: string) => `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${name}
  namespace: shop
spec:
  hosts: [${host}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  subjectAltNames: ['${san}']
  endpoints: [{ address: ${backend.address}, labels: { security.istio.io/tlsMode: istio } }]
`;
  return (
    entry('backend-b', B_BACKEND_HOST.split(':')[0]!, ids.backend) +
    entry('backend-b-wrong-san', B_WRONG_SAN_HOST.split(':')[0]!, 'spiffe://b.example/ns/store/sa/someone-else')
  );
}

// B lets exactly one principal of A call its backend.
const B_POLICY = `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: backend-allow-a-client
  namespace: store
spec:
  selector:
    matchLabels:
      app: backend
  action: ALLOW
  rules:
    - from:
        - source:
            principals: ['a.example/ns/shop/sa/client']
`;

async function refusals(side: FederatedSide, trustDomain: string, reason: string): Promise<number> {
  const m = await side.mesh.mp.metrics.registry.getSingleMetric('meshpilot_federation_bundle_refusals_total')?.get();
  return m?.values.find((v) => v.labels.trust_domain === trustDomain && v.labels.reason === reason)?.value ?? 0;
}

/** How many root certificates an Envoy's ROOTCA (SPIFFE validator) holds for one trust domain. */
async function rootsFor(envoy: EnvoyProcess, trustDomain: string): Promise<number> {
  const dump = (await envoy.configDump('resource=dynamic_active_secrets')) as {
    configs?: {
      name?: string;
      secret?: {
        validation_context?: {
          custom_validator_config?: { typed_config?: { trust_domains?: { name?: string; trust_bundle?: { inline_string?: string } }[] } };
        };
      };
    }[];
  };
  const domains =
    dump.configs?.find((c) => c.name === 'ROOTCA')?.secret?.validation_context?.custom_validator_config?.typed_config?.trust_domains ?? [];
  return (domains.find((d) => d.name === trustDomain)?.trust_bundle?.inline_string?.match(/BEGIN CERTIFICATE/g) ?? []).length;
}

describe('SPIFFE federation between two meshes with real Envoy', function () {
  this.timeout(180_000);
  let fed: Awaited<ReturnType<typeof startFederation>>;
  let a: FederatedSide;
  let b: FederatedSide;
  const envoys: Record<string, EnvoyProcess> = {};

  before(async () => {
    fed = await startFederation({
      a: {
        files: { 'workloads.yaml': workloadYaml(client) + workloadYaml(intruder), 'cross-mesh.yaml': crossMeshEntries() },
        apps: [client, intruder],
      },
      b: { files: { 'workloads.yaml': workloadYaml(backend) + B_POLICY }, apps: [backend] },
    });
    ({ a, b } = fed);
    envoys.backend = await b.mesh.startSidecar(backend);
    envoys.client = await a.mesh.startSidecar(client);
    envoys.intruder = await a.mesh.startSidecar(intruder);
    // Each side has fetched the other's bundle from its endpoint at least once (authenticated with the file's).
    for (const [side, peer] of [
      [a, b],
      [b, a],
    ] as const)
      await eventually(async () => (await side.mesh.mp.federation!.refresh(peer.trustDomain)).ok, {
        description: `${side.trustDomain} to fetch ${peer.trustDomain}'s bundle`,
      });
  });
  afterEach(function () {
    a?.mesh.dumpIfFailed(this.currentTest);
    b?.mesh.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await fed?.stop();
  });

  const bRoots = () => b.mesh.mp.ca.trustBundle().pem;
  const aRoots = () => a.mesh.mp.ca.trustBundle().pem;

  it('a client in A calls a service in B through both sidecars; the B app sees the A SPIFFE ID; B refuses another A principal', async () => {
    const res = await eventually(
      async () => {
        const r = await a.mesh.call(client, B_BACKEND_HOST);
        return r.status === 200 ? r : undefined;
      },
      { description: 'client (A) → backend (B) to answer 200' },
    );
    assert.ok(res);
    assert.equal(xfccUri((res.json as { headers?: Record<string, unknown> }).headers), ids.client);
    const denied = await a.mesh.call(intruder, B_BACKEND_HOST);
    assert.equal(denied.status, 403, denied.body);
  });

  it("secure naming across meshes: A's sidecar refuses B's backend where it expects another B identity", async () => {
    const r = await a.mesh.call(client, B_WRONG_SAN_HOST);
    assert.equal(r.status, 503, r.body);
    assert.match(r.body, /CERTIFICATE_VERIFY_FAILED|SAN|verify/i);
  });

  it("B's sidecar accepts an A identity its policy allows (the app sees it) and refuses another A principal with 403", async () => {
    const allowed = await eventually(
      async () => {
        const r = await mtlsRequest(backend.address, SIDECAR_PORT, issueFor(a, ids.client, bRoots()));
        return 'status' in r && r.status === 200 ? r : undefined;
      },
      { description: 'an A client certificate to be accepted by B' },
    );
    assert.ok(allowed);
    assert.equal(xfccUri(allowed.json?.headers), ids.client);
    const refused = await mtlsRequest(backend.address, SIDECAR_PORT, issueFor(a, ids.intruder, bRoots()));
    assert.ok('status' in refused, JSON.stringify(refused));
    assert.equal(refused.status, 403);
  });

  it("refuses a certificate for an A identity signed by B's CA: a B root never vouches for an A identity", async () => {
    const forged = forgeWithRoot(b.stateDir, ids.client, bRoots());
    const r = await mtlsRequest(backend.address, SIDECAR_PORT, forged);
    assert.ok('error' in r, `expected a refused handshake, got ${JSON.stringify(r)}`);
    // And the other way round: A's sidecar refuses a B identity signed by A's CA.
    const forgedB = forgeWithRoot(a.stateDir, ids.backend, aRoots());
    const r2 = await mtlsRequest(client.address, SIDECAR_PORT, forgedB);
    assert.ok('error' in r2, `expected a refused handshake, got ${JSON.stringify(r2)}`);
    // The genuine B identity is accepted by A's sidecar (A has no policy on client: mTLS only).
    const genuine = await mtlsRequest(client.address, SIDECAR_PORT, issueFor(b, ids.backend, aRoots()));
    assert.ok('status' in genuine && genuine.status === 200, JSON.stringify(genuine));
    assert.equal(xfccUri(genuine.json?.headers), ids.backend);
  });

  it('revocation still works under the SPIFFE validator: a revoked B certificate is refused by B', async () => {
    const own = issueFor(b, 'spiffe://b.example/ns/store/sa/other', bRoots());
    const before = await mtlsRequest(backend.address, SIDECAR_PORT, own);
    // Not allowed by B's policy, but the handshake succeeds: a 403 from the RBAC filter.
    assert.ok('status' in before && before.status === 403, JSON.stringify(before));
    const serial = new (await import('node:crypto')).X509Certificate(own.cert).serialNumber;
    assert.ok((await b.mesh.mp.ca.revoke(serial)).ok);
    await eventually(async () => 'error' in (await mtlsRequest(backend.address, SIDECAR_PORT, own)), {
      timeoutMs: 10_000,
      description: 'the revoked certificate to be refused at the handshake',
    });
    // An unrevoked A identity still passes (the CRL check covers B's chain only).
    const allowed = await mtlsRequest(backend.address, SIDECAR_PORT, issueFor(a, ids.client, bRoots()));
    assert.ok('status' in allowed && allowed.status === 200, JSON.stringify(allowed));
  });

  it('B rotates its root (prepare, activate, retire) and calls across the meshes keep working with zero failed requests', async () => {
    let ok = 0;
    const failures: string[] = [];
    let stop = false;
    // A bounded request loop in both directions: B identities (as B's CA issues them now) into A's
    // sidecar, which validates them with the B bundle A fetched; A identities into B's sidecar.
    const loop = (async () => {
      const deadline = Date.now() + 90_000;
      while (!stop && Date.now() < deadline) {
        for (const r of [
          await mtlsRequest(client.address, SIDECAR_PORT, issueFor(b, ids.backend, aRoots())),
          await mtlsRequest(backend.address, SIDECAR_PORT, issueFor(a, ids.client, bRoots())),
        ]) {
          if ('status' in r && r.status === 200) ok++;
          else failures.push(JSON.stringify(r));
        }
      }
    })();
    // And the real path: A's client through its sidecar to B's backend through B's sidecar.
    const load = startLoad({
      host: client.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: B_BACKEND_HOST,
      concurrency: 2,
      maxDurationMs: 90_000,
      pauseMs: 10,
    });
    let counts: LoadCounts | undefined;
    try {
      assert.ok((await b.mesh.mp.ca.rotateRoot('prepare')).ok);
      // The operator waits until federated meshes trust the new root before activating it.
      await eventually(async () => (await rootsFor(envoys.client!, 'b.example')) === 2, {
        timeoutMs: 20_000,
        description: "A's sidecar to trust both B roots",
      });
      await eventually(async () => (await rootsFor(envoys.intruder!, 'b.example')) === 2, {
        timeoutMs: 20_000,
        description: "A's other sidecar to trust both B roots",
      });
      const before = (await leafSerials(envoys.backend!))[0];
      assert.ok((await b.mesh.mp.ca.rotateRoot('activate')).ok);
      await eventually(async () => !(await leafSerials(envoys.backend!)).includes(before!), {
        description: "B's sidecar to get an SVID of the new root",
      });
      assert.ok((await b.mesh.mp.ca.rotateRoot('retire', { force: true })).ok);
      await eventually(async () => (await rootsFor(envoys.client!, 'b.example')) === 1, {
        timeoutMs: 20_000,
        description: "A's sidecar to drop B's old root",
      });
      // A fetched the retired bundle through an endpoint now serving under the new root: authenticated with the bundle held before.
      assert.equal(a.mesh.mp.federation!.list()[0]!.rootsPem.length, 1);
      assert.equal(a.mesh.mp.federation!.list()[0]!.rootsPem[0], b.mesh.mp.ca.trustBundle().rootsPem[0]);
    } finally {
      stop = true;
      await loop;
      counts = await load.stop();
    }
    console.log(`      ${formatCounts("sidecar to sidecar across the meshes during B's root rotation", counts)}`);
    console.log(`      direct mTLS requests into both meshes during B's root rotation: ${ok} ok, ${failures.length} failed`);
    assert.equal(counts.failed, 0, JSON.stringify(counts.failures));
    assert.ok(counts.ok > 50, `only ${counts.ok} requests through the sidecars`);
    assert.deepEqual(failures, []);
    assert.ok(ok > 20, `only ${ok} requests went through`);
  });

  it("B's bundle endpoint down: A keeps the last good bundle and traffic flows", async () => {
    const held = a.mesh.mp.federation!.list()[0]!;
    await b.mesh.mp.stop();
    await eventually(async () => (await refusals(a, 'b.example', 'unreachable')) > 0, {
      description: "A to count a failed fetch of B's bundle",
    });
    assert.deepEqual(a.mesh.mp.federation!.list()[0]!.rootsPem, held.rootsPem);
    assert.ok(
      a.mesh.logLines.some(
        (l) => l.msg === 'federated bundle refused' && l.fields.trustDomain === 'b.example' && l.fields.reason === 'unreachable',
      ),
    );
    for (let i = 0; i < 5; i++) {
      const r = await mtlsRequest(client.address, SIDECAR_PORT, issueFor(b, ids.backend, aRoots()));
      assert.ok('status' in r && r.status === 200, JSON.stringify(r));
      // Traffic flows across the meshes too: B's sidecars keep their config while B's control plane is away.
      const viaSidecars = await a.mesh.call(client, B_BACKEND_HOST);
      assert.equal(viaSidecars.status, 200, viaSidecars.body);
    }
  });
});
