// Two `meshpilot serve` replicas share one CA in a three-member etcd (TLS, client
// certificates): a sidecar on each, traffic between them over mTLS under the one root, and a
// certificate revoked through replica A refused at the sidecar of replica B within seconds.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { startEtcdCluster, type EtcdCluster } from '../src/store/etcd-kit.js';
import { envoyPool, eventually, httpRequest, startHttpUpstream, type EnvoyPool, type HttpUpstream } from './harness/index.js';
import { APP_PORT, backend, backendHost, frontend, photoAppConfig, SERVICE_PORT } from './kit/photo-app.js';
import type { TestWorkload } from './kit/mesh.js';
import {
  controlPlaneProcess,
  logEntries,
  runMeshpilot,
  runMeshpilotAsync,
  startMeshpilotProcess,
  type ControlPlaneProcess,
} from './kit/processes.js';
import { mtlsGetOnce, readIssued } from './kit/tls-client.js';

describe('CA shared by two replicas on a three-member etcd (real Envoy)', function () {
  this.timeout(180_000);
  let etcd: EtcdCluster;
  let dir: string;
  let a: ControlPlaneProcess;
  let b: ControlPlaneProcess;
  let envoys: EnvoyPool;
  const apps: HttpUpstream[] = [];
  let storeArgs: string[];

  const bootstrap = (w: TestWorkload, cp: ControlPlaneProcess) =>
    JSON.parse(
      runMeshpilot([
        'bootstrap',
        ...storeArgs,
        '--namespace',
        w.namespace,
        '--workload',
        w.name,
        '--service-account',
        w.serviceAccount ?? w.name,
        '--address',
        w.address,
        '--xds-address',
        `127.0.0.1:${cp.xdsPort}`,
      ]),
    ) as Record<string, unknown>;

  before(async () => {
    etcd = await startEtcdCluster({ members: 3 });
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-e2e-ca-replicas-'));
    const configDir = join(dir, 'config');
    mkdirSync(configDir);
    writeFileSync(join(configDir, 'mesh.yaml'), photoAppConfig());
    const keyFile = join(dir, 'ca-store.key');
    writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
    storeArgs = [
      '--ca-store', 'etcd', '--ca-store-key', keyFile,
      '--etcd-endpoints', etcd.endpoints.join(','),
      '--etcd-ca', etcd.tls.caFile, '--etcd-cert', etcd.tls.certFile, '--etcd-key', etcd.tls.keyFile,
    ]; // prettier-ignore
    a = await controlPlaneProcess({ configDir, stateDir: join(dir, 'replica-a'), extraArgs: storeArgs });
    b = await controlPlaneProcess({ configDir, stateDir: join(dir, 'replica-b'), extraArgs: storeArgs });
    // Started together: whichever creates the CA first, the other adopts it.
    await Promise.all([a.start(), b.start()]);
    envoys = envoyPool();
    for (const [w, cp] of [
      [frontend, a],
      [backend, b],
    ] as const) {
      apps.push(await startHttpUpstream({ host: w.address, port: APP_PORT, name: w.name }));
      await envoys.start({ name: `${w.name}-sidecar`, bootstrap: bootstrap(w, cp) });
    }
  });
  afterEach(function () {
    envoys?.dumpLogsIfFailed(this.currentTest);
    if (this.currentTest?.state === 'failed') {
      console.error(`--- replica a ---\n${a?.current()?.logs(40)}`);
      console.error(`--- replica b ---\n${b?.current()?.logs(40)}`);
    }
  });
  after(async () => {
    await envoys?.stopAll();
    await a?.current()?.stop();
    await b?.current()?.stop();
    await Promise.all(apps.map((x) => x.close()));
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves one CA: a sidecar on replica A reaches a sidecar on replica B over mTLS', async () => {
    const r = await eventually(
      async () => {
        const res = await httpRequest({ host: frontend.address, port: OUTBOUND_HTTP_PORT, path: '/x', headers: { host: backendHost } });
        return res.status === 200 ? res : false;
      },
      { timeoutMs: 30_000, description: 'frontend (replica A) → backend (replica B)' },
    );
    assert.equal(r.status, 200);
    const opened = (cp: ControlPlaneProcess) => logEntries(cp.allLines()).filter((e) => e.msg === 'shared ca opened');
    assert.equal(opened(a).length, 1);
    assert.equal(opened(b).length, 1);
    const created = [...logEntries(a.allLines()), ...logEntries(b.allLines())].filter((e) => e.msg === 'shared ca created');
    assert.equal(created.length, 1, 'exactly one replica created the CA');
  });

  const issueThrough = async (cp: 'replica-a' | 'replica-b', name: string) => {
    const out = join(dir, name);
    const said = await runMeshpilotAsync([
      'ca', 'issue', '--state-dir', join(dir, cp),
      '--namespace', 'photo-ns', '--service-account', 'photo-frontend', '--out', out, '--ttl', '1h',
    ]); // prettier-ignore
    return { serial: /serial: ([0-9a-f]+)/.exec(said)![1]!, cert: readIssued(out) };
  };

  it("refuses at replica B's sidecar, within 5 s, a certificate revoked through replica A", async () => {
    const { serial, cert } = await issueThrough('replica-a', 'issued-by-a');
    await eventually(async () => (await mtlsGetOnce(backend.address, SERVICE_PORT, cert)) === 200, {
      timeoutMs: 10_000,
      description: "B's sidecar accepts the certificate A issued",
    });
    const revokedAt = Date.now();
    const r = await runMeshpilotAsync(['ca', 'revoke', '--state-dir', join(dir, 'replica-a'), '--serial', serial]);
    assert.match(r, /via the running control plane/);
    await eventually(async () => (await mtlsGetOnce(backend.address, SERVICE_PORT, cert)) !== 200, {
      timeoutMs: 5_000,
      intervalMs: 50,
      description: "B's sidecar refuses the certificate revoked through A",
    });
    console.log(`      revoked through replica A, refused at replica B's sidecar ${Date.now() - revokedAt} ms later`);
    // Replica B lists it too (`ca show` through B's admin port: B's state directory holds no CA).
    assert.match(await runMeshpilotAsync(['ca', 'show', '--state-dir', join(dir, 'replica-b')]), new RegExp(serial));
    // The legitimate path still works.
    const ok = await httpRequest({ host: frontend.address, port: OUTBOUND_HTTP_PORT, path: '/after', headers: { host: backendHost } });
    assert.equal(ok.status, 200);
  });

  it("refuses at replica B's sidecar a certificate revoked with `ca revoke --ca-store etcd`, through no replica", async () => {
    const { serial, cert } = await issueThrough('replica-a', 'issued-by-a-2');
    await eventually(async () => (await mtlsGetOnce(backend.address, SERVICE_PORT, cert)) === 200, {
      timeoutMs: 10_000,
      description: "B's sidecar accepts the certificate A issued",
    });
    const revokedAt = Date.now();
    // The command opens the CA in etcd itself (compare-and-swap); the replicas learn of it by their watch.
    const r = await runMeshpilotAsync(['ca', 'revoke', ...storeArgs, '--serial', serial]);
    assert.match(r, new RegExp(`^revoked ${serial} \\(spiffe://cluster\\.local/ns/photo-ns/sa/photo-frontend\\) in etcd`));
    await eventually(async () => (await mtlsGetOnce(backend.address, SERVICE_PORT, cert)) !== 200, {
      timeoutMs: 5_000,
      intervalMs: 50,
      description: "B's sidecar refuses the certificate revoked in etcd",
    });
    console.log(`      revoked in etcd by the CLI, refused at replica B's sidecar ${Date.now() - revokedAt} ms later`);
    assert.match(await runMeshpilotAsync(['ca', 'show', ...storeArgs]), new RegExp(`^  ${serial} `, 'm'));
    const ok = await httpRequest({ host: frontend.address, port: OUTBOUND_HTTP_PORT, path: '/after-cli', headers: { host: backendHost } });
    assert.equal(ok.status, 200);
  });

  const metric = async (cp: ControlPlaneProcess, name: string) => {
    const text = await (await fetch(`http://127.0.0.1:${cp.adminPort}/metrics`)).text();
    return new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1];
  };
  const legitimate = async () =>
    (await httpRequest({ host: frontend.address, port: OUTBOUND_HTTP_PORT, path: '/ok', headers: { host: backendHost } })).status;

  it('keeps revoking with one etcd member killed', async () => {
    await etcd.kill(0);
    try {
      const { serial, cert } = await issueThrough('replica-b', 'issued-member-down');
      await runMeshpilotAsync(['ca', 'revoke', '--state-dir', join(dir, 'replica-b'), '--serial', serial]);
      await eventually(async () => (await mtlsGetOnce(backend.address, SERVICE_PORT, cert)) !== 200, {
        timeoutMs: 5_000,
        intervalMs: 50,
        description: 'refused after a revocation made with one etcd member down',
      });
      assert.equal(await legitimate(), 200);
    } finally {
      await etcd.restart(0);
    }
  });

  it('with all of etcd down: keeps serving, refuses revocations as unavailable, says so in logs and metrics, and recovers', async () => {
    const { serial, cert } = await issueThrough('replica-a', 'issued-etcd-down');
    for (let i = 0; i < 3; i++) await etcd.kill(i);
    try {
      assert.equal(await legitimate(), 200, 'traffic keeps flowing on the last certificates');
      await assert.rejects(
        runMeshpilotAsync(['ca', 'revoke', '--state-dir', join(dir, 'replica-a'), '--serial', serial]),
        /ca store unreachable/,
      );
      assert.equal(await metric(a, 'meshpilot_ca_store_reachable'), '0');
      await a.current().waitForLog((l) => l.includes('"ca store unreachable"'), 'the store is said to be unreachable');
      assert.equal(await mtlsGetOnce(backend.address, SERVICE_PORT, cert), 200, 'nothing was half-revoked');
    } finally {
      await Promise.all([0, 1, 2].map((i) => etcd.restart(i)));
    }
    // Back: the same revocation goes through (after the client's reconnect), and reaches B.
    await eventually(
      async () => {
        await runMeshpilotAsync(['ca', 'revoke', '--state-dir', join(dir, 'replica-a'), '--serial', serial]);
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 500, description: 'a revocation through A once etcd is back' },
    );
    const back = Date.now();
    await eventually(async () => (await mtlsGetOnce(backend.address, SERVICE_PORT, cert)) !== 200, {
      timeoutMs: 5_000,
      intervalMs: 100,
      description: "B's sidecar refuses the certificate once etcd is back",
    });
    console.log(`      after etcd came back: refused at replica B's sidecar ${Date.now() - back} ms after the revocation`);
    assert.equal(await metric(a, 'meshpilot_ca_store_reachable'), '1');
    assert.equal(await legitimate(), 200);
  });

  it('refuses a replica with another sealing key, naming the fingerprints and the flag', async () => {
    const wrongKey = join(dir, 'wrong.key');
    writeFileSync(wrongKey, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
    const args = storeArgs.map((x, i) => (storeArgs[i - 1] === '--ca-store-key' ? wrongKey : x));
    const c = startMeshpilotProcess('replica-c', [
      'serve', '--config', join(dir, 'config'), '--state-dir', join(dir, 'replica-c'),
      '--xds-address', '127.0.0.1:0', '--admin-port', '0', ...args,
    ]); // prettier-ignore
    const exit = await c.exited;
    assert.notEqual(exit.code, 0);
    assert.match(c.logs(), /sealed with the key of fingerprint [0-9a-f]{16}, but --ca-store-key .*wrong\.key has fingerprint [0-9a-f]{16}/);
  });
});
