// Certificates as files (meshpilot serve --secret-dir) with real Envoy: sidecars read their SVID
// through Envoy's file-based SDS from the directory meshpilot keeps, and the trust bundle with
// the CRL over xDS. Short-lived certificates rotate on disk while requests flow without one
// failing; a revoked certificate is replaced on disk at once; an unwritable directory is refused.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, type EnvoyProcess } from './harness/index.js';
import { leafSerials } from './kit/certs.js';
import { formatCounts, startLoad } from './kit/load.js';
import { startMesh, type TestMesh } from './kit/mesh.js';
import { backend, backendHost, frontend, photoAppConfig } from './kit/photo-app.js';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { startMeshpilot } from '../src/main.js';
import { createLogger } from '../src/observability/index.js';

const TTL_S = 4;
const serialOf = (dir: string) => new X509Certificate(readFileSync(join(dir, 'cert-chain.pem'))).serialNumber.toLowerCase();

describe('certificates as files (serve --secret-dir) with real Envoy', function () {
  this.timeout(90_000);
  let mesh: TestMesh;
  let fe: EnvoyProcess;
  let be: EnvoyProcess;
  let secretDir: string;
  const dirOf = (ns: string, sa: string) => join(secretDir, ns, sa);

  before(async () => {
    secretDir = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-secrets-'));
    const config = photoAppConfig((y) =>
      y.replace('  trustDomain: cluster.local', `  trustDomain: cluster.local\n  certTtl: ${TTL_S}s\n  renewJitterFraction: 0.1`),
    );
    mesh = await startMesh({ 'mesh.yaml': config }, { apps: [frontend, backend], secretDir });
    const feDir = dirOf(frontend.namespace, frontend.serviceAccount ?? frontend.name);
    const beDir = dirOf(backend.namespace, backend.serviceAccount ?? backend.name);
    // Files exist before any proxy connects: the secrets manager keeps them for the account itself.
    await eventually(() => existsSync(join(feDir, 'default-sds.yaml')) && existsSync(join(beDir, 'default-sds.yaml')), {
      description: 'certificate files written',
    });
    [fe, be] = await Promise.all([mesh.startSidecar(frontend, { certDir: feDir }), mesh.startSidecar(backend, { certDir: beDir })]);
  });
  afterEach(function () {
    mesh.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
    rmSync(secretDir, { recursive: true, force: true });
  });

  it('writes key.pem, cert-chain.pem and root-cert.pem 0600 in a 0700 directory, and never sends the key over xDS', async () => {
    const d = dirOf(backend.namespace, backend.serviceAccount ?? backend.name);
    assert.equal(statSync(d).mode & 0o777, 0o700);
    for (const f of ['key.pem', 'cert-chain.pem', 'root-cert.pem']) {
      assert.ok(lstatSync(join(d, f)).isSymbolicLink(), `${f} goes through ..data (atomic swap)`);
      assert.equal(statSync(join(d, f)).mode & 0o777, 0o600, f);
    }
    const leaf = new X509Certificate(readFileSync(join(d, 'cert-chain.pem')));
    assert.match(leaf.subjectAltName ?? '', /spiffe:\/\/cluster\.local\/ns\/photo-ns\/sa\/photo-backend/);
    assert.ok(leaf.checkPrivateKey((await import('node:crypto')).createPrivateKey(readFileSync(join(d, 'key.pem')))));
    assert.equal(readFileSync(join(d, 'root-cert.pem'), 'utf8'), mesh.mp.ca.trustBundle().pem);
    // Envoy's default secret is the one from the file, and meshpilot's snapshot holds no `default`.
    const dump = JSON.stringify(await be.configDump('resource=dynamic_active_secrets'));
    assert.ok(!dump.includes('PRIVATE KEY'), 'no key in any dynamic secret');
    const res = await mesh.call(frontend, backendHost);
    assert.equal(res.status, 200);
    assert.match(res.body, /spiffe:\/\/cluster\.local\/ns\/photo-ns\/sa\/photo-frontend/);
  });

  it('rotates the files at least three times while requests flow, with zero failed requests', async () => {
    const seen = { fe: new Set<string>(), be: new Set<string>() };
    const load = startLoad({
      host: frontend.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: backendHost,
      concurrency: 4,
      maxDurationMs: 30_000,
    });
    await eventually(
      async () => {
        for (const s of await leafSerials(fe)) seen.fe.add(s);
        for (const s of await leafSerials(be)) seen.be.add(s);
        return seen.fe.size >= 4 && seen.be.size >= 4;
      },
      { timeoutMs: 25_000, intervalMs: 250, description: 'three rotations read from files on both sides' },
    );
    const counts = await load.stop();
    console.log(`      ${formatCounts('file rotation', counts)}; serials seen: frontend ${seen.fe.size}, backend ${seen.be.size}`);
    assert.ok(counts.ok > 50, 'requests flowed throughout');
    assert.equal(counts.failed, 0, JSON.stringify(counts.failures));
    assert.ok(fe.running && be.running, 'no Envoy restarted');
  });

  it('replaces a revoked certificate on disk at once', async () => {
    const d = dirOf(backend.namespace, backend.serviceAccount ?? backend.name);
    const before = serialOf(d);
    const t0 = Date.now();
    const r = await mesh.mp.ca.revoke(before);
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    await eventually(() => serialOf(d) !== before, { timeoutMs: 2_000, intervalMs: 20, description: 'a new certificate on disk' });
    console.log(`      revoked certificate replaced on disk in ${Date.now() - t0} ms`);
    await eventually(async () => (await leafSerials(be)).every((s) => s !== before), { description: 'Envoy reloaded it' });
    assert.equal((await mesh.call(frontend, backendHost)).status, 200);
  });
});

describe('serve --secret-dir that is not writable', function () {
  this.timeout(20_000);
  it('refuses to start, naming the directory', async () => {
    const base = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-ro-'));
    const config = join(base, 'config');
    mkdirSync(config);
    writeFileSync(
      join(config, 'mesh.yaml'),
      photoAppConfig((y) => y),
    );
    // A regular file where the directory should be: not writable even for root.
    const blocked = join(base, 'not-a-dir');
    writeFileSync(blocked, '');
    try {
      await assert.rejects(
        startMeshpilot({
          configPaths: [config],
          ephemeral: true,
          xdsHost: '127.0.0.1',
          xdsPort: 0,
          secretDir: blocked,
          log: createLogger({ level: 'error' }),
        }),
        (e: Error) => e.message.includes(blocked),
      );
      // Through the real CLI too: exit status non-zero and the path on stderr.
      chmodSync(blocked, 0o400);
      let stderr = '';
      try {
        execFileSync(
          process.execPath,
          [
            'dist/src/cli/bin.js',
            'serve',
            '--config',
            config,
            '--ephemeral',
            '--xds-address',
            '127.0.0.1:0',
            '--admin-port',
            '0',
            '--secret-dir',
            blocked,
          ],
          {
            timeout: 15_000,
            stdio: ['ignore', 'ignore', 'pipe'],
          },
        );
        assert.fail('serve started');
      } catch (e) {
        stderr = String((e as { stderr?: Buffer }).stderr ?? '');
      }
      assert.ok(stderr.includes(blocked), stderr);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
