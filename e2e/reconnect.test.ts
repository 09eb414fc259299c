// Scenario 9 with real Envoy: a sidecar that was away while something changed gets only
// current state when it comes back: a DENY policy added meanwhile, a new certificate after
// its old one was revoked (and its peers' CRL names the old serial), a valid certificate
// after the one it had would have expired.
import assert from 'node:assert/strict';
import * as pkijs from 'pkijs';
import { SDS_ROOTCA } from '../src/generate/index.js';
import { eventually, type EnvoyProcess } from './harness/index.js';
import { startMesh, type TestMesh } from './kit/mesh.js';
import { backend, backendHost, DENY_FRONTEND_TO_BACKEND, frontend, photoAppConfig, photoAppPolicy } from './kit/photo-app.js';

const TTL_S = 4;

interface CertsDump {
  certificates: { cert_chain: { serial_number: string; expiration_time: string }[] }[];
}

/** The serial and expiry of the leaf certificate Envoy presents (its `default` secret), from its admin `/certs`. */
async function presentedLeaf(envoy: EnvoyProcess): Promise<{ serial: string; notAfter: number } | false> {
  const r = await envoy.admin('/certs');
  const dump = JSON.parse(r.body) as CertsDump;
  for (const c of dump.certificates) {
    const leaf = c.cert_chain[0];
    if (leaf) return { serial: leaf.serial_number.toLowerCase().replace(/^0+/, ''), notAfter: Date.parse(leaf.expiration_time) };
  }
  return false;
}

/** The serials revoked by the CRL in a sidecar's active `ROOTCA` secret, from its config dump. */
async function revokedSerialsSeenBy(envoy: EnvoyProcess): Promise<string[]> {
  const dump = await envoy.configDump('resource=dynamic_active_secrets');
  const secret = (dump.configs as { name: string; secret: { validation_context?: { crl?: { inline_string?: string } } } }[]).find(
    (c) => c.name === SDS_ROOTCA,
  );
  const pem = secret?.secret.validation_context?.crl?.inline_string ?? '';
  const serials: string[] = [];
  for (const block of pem.match(/-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g) ?? []) {
    const der = Buffer.from(block.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const crl = pkijs.CertificateRevocationList.fromBER(der);
    for (const r of crl.revokedCertificates ?? [])
      serials.push(Buffer.from(r.userCertificate.valueBlock.valueHexView).toString('hex').replace(/^0+/, ''));
  }
  return serials;
}

describe('a sidecar that was away gets only current state (scenario 9)', function () {
  this.timeout(90_000);
  let mesh: TestMesh;
  let front: EnvoyProcess;

  before(async () => {
    const shortTtl = (y: string) => y.replace('  trustDomain: cluster.local', `  trustDomain: cluster.local\n  certTtl: ${TTL_S}s`);
    mesh = await startMesh({ 'mesh.yaml': photoAppConfig(shortTtl), 'policy.yaml': photoAppPolicy() }, { apps: [frontend, backend] });
    front = await mesh.startSidecar(frontend);
  });
  afterEach(function () {
    mesh.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
  });

  const call = () => mesh.call(frontend, backendHost, '/photos');
  const accepted = () => mesh.logLines.filter((l) => l.msg === 'config accepted').length;

  it('gets a DENY policy added while it was away (the request is refused with 403)', async () => {
    let back = await mesh.startSidecar(backend);
    await eventually(async () => (await call()).status === 200 || false, { description: 'frontend → backend allowed' });
    await back.stop();
    const before = accepted();
    mesh.writeConfig('deny.yaml', DENY_FRONTEND_TO_BACKEND);
    await eventually(() => accepted() > before || false, { description: 'the DENY policy accepted' });
    back = await mesh.startSidecar(backend);
    const refused = await eventually(async () => ((await call()).status === 403 ? true : false), {
      description: 'the restarted backend refuses frontend',
    });
    assert.ok(refused);
    await back.stop();
    mesh.writeConfig('deny.yaml', '');
    await eventually(() => accepted() > before + 1 || false, { description: 'the DENY policy removed' });
  });

  it('presents a new, unrevoked SVID after its old one was revoked while it was away, and its peers’ CRL lists the old serial', async () => {
    let back = await mesh.startSidecar(backend);
    await eventually(async () => (await call()).status === 200 || false, { description: 'frontend → backend' });
    const old = await eventually(() => presentedLeaf(back), { description: 'the backend’s certificate' });
    await back.stop();
    // What `meshpilot ca revoke` does through the admin port.
    const r = await mesh.mp.ca.revoke(old.serial);
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    await eventually(async () => ((await revokedSerialsSeenBy(front)).includes(old.serial) ? true : false), {
      description: 'the frontend’s CRL to list the revoked serial',
    });
    back = await mesh.startSidecar(backend);
    const fresh = await eventually(() => presentedLeaf(back), { description: 'the restarted backend’s certificate' });
    assert.notEqual(fresh.serial, old.serial, 'a new certificate, not the revoked one');
    await eventually(async () => (await call()).status === 200 || false, { description: 'frontend → restarted backend' });
    await back.stop();
  });

  it('gets a valid SVID when it comes back after the one it had would have expired, and serves traffic', async () => {
    let back = await mesh.startSidecar(backend);
    const first = await eventually(() => presentedLeaf(back), { description: 'the backend’s certificate' });
    await back.stop();
    // Away for longer than the certificate lived.
    await eventually(() => (Date.now() > first.notAfter + 1_000 ? true : false), { timeoutMs: (TTL_S + 5) * 1_000, description: 'expiry' });
    back = await mesh.startSidecar(backend);
    const leaf = await eventually(() => presentedLeaf(back), { description: 'the restarted backend’s certificate' });
    assert.ok(leaf.notAfter > Date.now(), `presented certificate expired at ${new Date(leaf.notAfter).toISOString()}`);
    await eventually(async () => (await call()).status === 200 || false, { description: 'frontend → restarted backend' });
    await back.stop();
  });
});
