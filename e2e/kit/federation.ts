// Two federated meshes for e2e tests: trust domains a.example and b.example, each with its own
// meshpilot (state directory, bundle endpoint on a free loopback port) and sidecars, each
// holding the other's bundle from the start (the out-of-band exchange an operator does).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSelfSignedCa, generateKeyPair } from '../../src/ca/index.js';
import { encodeSpiffeBundle } from '../../src/federation/index.js';
import { mustSpiffeId, mustTrustDomain } from '../../src/identity/index.js';
import { freePort } from '../harness/index.js';
import { startMesh, type TestMesh, type TestWorkload } from './mesh.js';
import type { ClientCert } from './tls-client.js';

/** One side of a federation. */
export interface FederatedSide {
  readonly trustDomain: string;
  readonly stateDir: string;
  readonly bundlePort: number;
  readonly endpointId: string;
  mesh: TestMesh;
}

/** Makes a state directory with a root for `trustDomain` (what `meshpilot ca init` does). */
export function initState(trustDomain: string): string {
  const dir = mkdtempSync(join(tmpdir(), `meshpilot-fed-${trustDomain}-`));
  const ca = createSelfSignedCa({ trustDomain: mustTrustDomain(trustDomain), stateDir: dir });
  if (!ca.ok) throw new Error(ca.error.message);
  ca.value.close();
  return dir;
}

/** The SPIFFE bundle of the CA kept in a state directory (what `meshpilot ca bundle` prints). */
export function bundleOf(trustDomain: string, stateDir: string): string {
  const ca = createSelfSignedCa({ trustDomain: mustTrustDomain(trustDomain), stateDir });
  if (!ca.ok) throw new Error(ca.error.message);
  try {
    return encodeSpiffeBundle({ rootsPem: ca.value.trustBundle().rootsPem, sequence: 1, refreshHintSeconds: 1 });
  } finally {
    ca.value.close();
  }
}

/** The MeshConfig of one side: its trust domain, its bundle endpoint, and the other side as a federated domain. */
export function federatedMeshConfig(
  self: { trustDomain: string; bundlePort: number },
  peer: { trustDomain: string; bundlePort: number; bundleFile: string },
): string {
  return `apiVersion: meshpilot.io/v1alpha1
kind: MeshConfig
metadata:
  name: mesh
spec:
  trustDomain: ${self.trustDomain}
  bundleEndpoint:
    address: 127.0.0.1
    port: ${self.bundlePort}
    refreshHint: 1s
  federatesWith:
    - trustDomain: ${peer.trustDomain}
      bundleEndpointUrl: https://127.0.0.1:${peer.bundlePort}/
      bundleEndpointProfile: https_spiffe
      endpointSpiffeId: spiffe://${peer.trustDomain}/ns/istio-system/sa/meshpilot
      trustBundleFile: ${peer.bundleFile}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
`;
}

/** A ServiceAccount, a Service on 9080 → 8080 and a WorkloadEntry, for one workload. */
export function workloadYaml(w: TestWorkload): string {
  const sa = w.serviceAccount ?? w.name;
  return `---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: ${sa}
  namespace: ${w.namespace}
---
apiVersion: v1
kind: Service
metadata:
  name: ${w.name}
  namespace: ${w.namespace}
spec:
  selector:
    app: ${w.name}
  ports:
    - name: http
      port: 9080
      targetPort: 8080
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: ${w.name}
  namespace: ${w.namespace}
spec:
  address: ${w.address}
  serviceAccount: ${sa}
  labels:
    app: ${w.name}
    security.istio.io/tlsMode: istio
`;
}

/** Starts both sides: state directories, bundle files exchanged, two meshpilots, the apps. */
export async function startFederation(o: {
  a: { files: Record<string, string>; apps: readonly TestWorkload[] };
  b: { files: Record<string, string>; apps: readonly TestWorkload[] };
}): Promise<{ a: FederatedSide; b: FederatedSide; dir: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'meshpilot-fed-bundles-'));
  const stateA = initState('a.example');
  const stateB = initState('b.example');
  const [portA, portB] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'a.example.json'), bundleOf('a.example', stateA));
  writeFileSync(join(dir, 'b.example.json'), bundleOf('b.example', stateB));
  const cleanup = () => {
    for (const d of [dir, stateA, stateB]) rmSync(d, { recursive: true, force: true });
  };
  let meshB: TestMesh | undefined;
  try {
    meshB = await startMesh(
      {
        'mesh.yaml': federatedMeshConfig(
          { trustDomain: 'b.example', bundlePort: portB },
          { trustDomain: 'a.example', bundlePort: portA, bundleFile: join(dir, 'a.example.json') },
        ),
        ...o.b.files,
      },
      { stateDir: stateB, apps: o.b.apps },
    );
    const meshA = await startMesh(
      {
        'mesh.yaml': federatedMeshConfig(
          { trustDomain: 'a.example', bundlePort: portA },
          { trustDomain: 'b.example', bundlePort: portB, bundleFile: join(dir, 'b.example.json') },
        ),
        ...o.a.files,
      },
      { stateDir: stateA, apps: o.a.apps },
    );
    const side = (trustDomain: string, stateDir: string, bundlePort: number, mesh: TestMesh): FederatedSide => ({
      trustDomain,
      stateDir,
      bundlePort,
      endpointId: `spiffe://${trustDomain}/ns/istio-system/sa/meshpilot`,
      mesh,
    });
    const a = side('a.example', stateA, portA, meshA);
    const b = side('b.example', stateB, portB, meshB);
    return {
      a,
      b,
      dir,
      async stop() {
        await a.mesh.stop();
        await b.mesh.stop();
        cleanup();
      },
    };
  } catch (e) {
    await meshB?.stop();
    cleanup();
    throw e;
  }
}

/** A client certificate for `spiffeId` signed by the side's CA, with that side's roots to check servers against. */
export function issueFor(side: FederatedSide, spiffeId: string, serverRootsPem: string): ClientCert {
  const keys = generateKeyPair('ec-p256');
  const r = side.mesh.mp.ca.signSvid({ spiffeId: mustSpiffeId(spiffeId), publicKey: keys.publicKey, ttlMs: 3_600_000 });
  if (!r.ok) throw new Error(r.error.message);
  return { key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: r.value.chainPem.join(''), ca: serverRootsPem };
}

/**
 * A certificate for `spiffeId` signed with the signing root key found in `stateDir`, whatever
 * its trust domain: a forgery the CA itself would refuse (a B root vouching for an A identity).
 */
export function forgeWithRoot(stateDir: string, spiffeId: string, serverRootsPem: string): ClientCert {
  const work = mkdtempSync(join(tmpdir(), 'meshpilot-fed-forge-'));
  try {
    const keyFile = readdirSync(stateDir)
      .filter((f) => /^root-\d+-key\.pem$/.test(f))
      .sort()
      .at(-1);
    if (!keyFile) throw new Error(`no root key in ${stateDir}`);
    const certFile = keyFile.replace('-key.pem', '-cert.pem');
    const ext = join(work, 'ext.cnf');
    writeFileSync(
      ext,
      `[v3]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=critical,URI:${spiffeId}\n`,
    );
    execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(work, 'leaf.key')]);
    execFileSync('openssl', ['req', '-new', '-key', join(work, 'leaf.key'), '-subj', '/O=forged', '-out', join(work, 'leaf.csr')]);
    execFileSync(
      'openssl',
      [
        'x509',
        '-req',
        '-in',
        join(work, 'leaf.csr'),
        '-CA',
        join(stateDir, certFile),
        '-CAkey',
        join(stateDir, keyFile),
        '-CAcreateserial',
        '-days',
        '1',
        '-extfile',
        ext,
        '-extensions',
        'v3',
        '-out',
        join(work, 'leaf.pem'),
      ],
      { stdio: 'ignore' },
    );
    return { key: readFileSync(join(work, 'leaf.key'), 'utf8'), cert: readFileSync(join(work, 'leaf.pem'), 'utf8'), ca: serverRootsPem };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** One HTTPS request presenting a client certificate: the status and the JSON the echo app answered, or the error. */
export function mtlsRequest(
  host: string,
  port: number,
  cert: ClientCert,
): Promise<{ status: number; json?: { headers?: Record<string, unknown> } } | { error: string }> {
  return new Promise((resolve) => {
    const req = https.request(
      {
        host,
        port,
        path: '/',
        method: 'GET',
        key: cert.key,
        cert: cert.cert,
        ca: cert.ca,
        agent: false,
        checkServerIdentity: () => undefined,
        servername: 'mesh',
        timeout: 3_000,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          let json: { headers?: Record<string, unknown> } | undefined;
          try {
            json = JSON.parse(text) as typeof json;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, ...(json ? { json } : {}) });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ error: (e as NodeJS.ErrnoException).code ?? e.message }));
    req.end();
  });
}
