// The demo's capture-mode section: the photo app in network namespaces behind `meshpilot capture`,
// a real `meshpilot serve` (reached over the kit's bridge), sidecars from `meshpilot bootstrap
// --capture` running as uid 1337, and `curl` inside a workload namespace as the unmodified client.
// Without root, iptables or curl it says why in one line and the demo goes on in loopback mode.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eventually, freePort } from '../harness/index.js';
import { startCapturedSidecar, meshpilotCli, type CapturedSidecar } from '../kit/captured-sidecar.js';
import { createTestNet, ensureProxyUser, netMode, PROXY_UID, TMP_PREFIX, type TestHost, type TestNet } from '../kit/netns.js';
import { photoAppConfig, photoAppPolicy, xfccUri } from '../kit/photo-app.js';
import { startMeshpilotProcess, type Child } from '../kit/processes.js';

const PORT = 9080;
const APP = `
const http = require('node:http');
http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ server: process.argv[1], headers: req.headers }));
}).listen(${PORT}, '0.0.0.0', () => console.log('listening'));`;

/** A claim the section proved or failed. */
export type Prove = (claim: string, held: boolean, detail?: string) => void;

/** Why capture mode cannot run here, or undefined when it can. */
export function captureUnavailable(): string | undefined {
  const mode = netMode();
  if (mode.kind === 'loopback') return mode.reason;
  if (spawnSync('curl', ['--version']).status !== 0) return 'curl is not installed';
  return undefined;
}

/** Runs the capture section; everything it made is removed before it returns, on failure too. */
export async function captureSection(prove: Prove, short: (id: string | undefined) => string): Promise<void> {
  ensureProxyUser();
  let net: TestNet | undefined;
  let cp: Child | undefined;
  const sidecars: CapturedSidecar[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${process.pid}-demo-`));
  // Certificates as files for photo-backend: the directory belongs to Envoy's user, so the files do too.
  const secretDir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${process.pid}-secrets-`));
  fs.chownSync(secretDir, PROXY_UID, PROXY_UID);
  const removeDirs = () => {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(secretDir, { recursive: true, force: true });
  };
  // Ctrl-C during the section: the namespaces, veths and processes go too (the kit also sweeps at start).
  const onSignal = () => {
    void (async () => {
      for (const s of sidecars) await s.stop();
      await cp?.stop();
      await net?.destroy();
      removeDirs();
      process.exit(130);
    })();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    net = createTestNet();
    const n = net;
    const hosts: [TestHost, string, string][] = [
      [n.addHost('frontend'), 'photo-frontend', 'photo-ns'],
      [n.addHost('backend'), 'photo-backend', 'photo-ns'],
      [n.addHost('datastore'), 'datastore', 'datastore-ns'],
    ];
    const [fe, be, ds] = hosts.map(([h]) => h) as [TestHost, TestHost, TestHost];
    const cpAddress = n.addRootLink();
    const configDir = path.join(dir, 'config');
    const stateDir = path.join(dir, 'state');
    fs.mkdirSync(configDir);
    fs.writeFileSync(
      path.join(configDir, 'mesh.yaml'),
      photoAppConfig((y) =>
        y
          .replace('address: 127.0.0.11', `address: ${fe.ip}`)
          .replace('address: 127.0.0.12', `address: ${be.ip}`)
          .replace('address: 127.0.0.13', `address: ${ds.ip}`)
          .replaceAll('targetPort: 8080', `targetPort: ${PORT}`)
          .replace(
            'spec:\n  trustDomain: cluster.local',
            `spec:\n  trustDomain: cluster.local\n  captureMode: iptables\n  serviceCidr: ${n.subnet}.192/26`,
          ),
      ),
    );
    fs.writeFileSync(path.join(configDir, 'policy.yaml'), photoAppPolicy());
    meshpilotCli(['ca', 'init', '--state-dir', stateDir]);
    const xdsPort = await freePort();
    const adminPort = await freePort();
    cp = startMeshpilotProcess('meshpilot-capture', [
      ...['serve', '--config', configDir, '--state-dir', stateDir],
      ...['--xds-address', `${cpAddress}:${xdsPort}`, '--admin-port', String(adminPort), '--secret-dir', secretDir],
    ]);
    await eventually(() => fetch(`http://127.0.0.1:${adminPort}/healthz`).then((r) => r.ok), {
      timeoutMs: 20_000,
      description: 'meshpilot serve (capture) /healthz',
    });
    console.log(`  meshpilot serve on ${cpAddress}:${xdsPort} (the bridge of the demo's namespaces)`);
    for (const [host, name, ns] of hosts) {
      host.writeHosts(meshpilotCli(['hosts', '--config', configDir, '--namespace', ns]));
      const app = host.spawn(name, [process.execPath, '-e', APP, name]);
      await app.waitForLine((l) => l === 'listening');
      meshpilotCli(['capture', '--netns', host.ns]);
      const certDir = name === 'photo-backend' ? path.join(secretDir, ns, name) : undefined;
      if (certDir)
        await eventually(() => fs.existsSync(path.join(certDir, 'default-sds.yaml')), { description: 'photo-backend certificate files' });
      sidecars.push(
        await startCapturedSidecar(host, {
          stateDir,
          namespace: ns,
          workload: name,
          serviceAccount: name,
          xdsAddress: `${cpAddress}:${xdsPort}`,
          certDir,
        }),
      );
      if (certDir)
        console.log(`  photo-backend's Envoy reads its SVID from ${certDir}/{key,cert-chain}.pem (meshpilot serve --secret-dir)`);
      console.log(`  ${name}: namespace ${host.ns} (${host.ip}), app on :${PORT}, iptables → Envoy 15001/15006 as uid 1337`);
    }
    const curl = async (url: string, want: number) =>
      eventually(
        async () => {
          const r = await fe.exec(['curl', '-s', '-m', '3', '-w', '\n%{http_code}', url]);
          const lines = r.stdout.trimEnd().split('\n');
          const status = Number(lines.pop());
          return status === want ? { status, body: lines.join('\n') } : false;
        },
        { timeoutMs: 15_000, intervalMs: 300, description: `curl ${url}` },
      ).catch(() => undefined);
    const toBackend = await curl(`http://photo-backend.photo-ns:${PORT}/`, 200);
    const seen = toBackend ? xfccUri((JSON.parse(toBackend.body) as { headers?: Record<string, string> }).headers) : undefined;
    console.log(
      `  ip netns exec ${fe.ns} curl http://photo-backend.photo-ns:${PORT}/  →  ${toBackend?.status ?? 'err'}, caller ${short(seen)}`,
    );
    prove(
      'capture mode: an unmodified client (curl) calls photo-backend by name; its sidecar adds mTLS with its SPIFFE ID',
      toBackend?.status === 200 && seen === 'spiffe://cluster.local/ns/photo-ns/sa/photo-frontend',
    );
    const toDatastore = await curl(`http://datastore.datastore-ns:${PORT}/`, 403);
    console.log(`  ip netns exec ${fe.ns} curl http://datastore.datastore-ns:${PORT}/  →  ${toDatastore?.status ?? 'err'}`);
    prove('capture mode: photo-frontend → datastore is denied (403) by the datastore sidecar', toDatastore?.status === 403);
    // photo-backend's sidecar served that first call with the certificate in its files, not one sent over xDS.
    const onDisk = new X509Certificate(fs.readFileSync(path.join(secretDir, 'photo-ns', 'photo-backend', 'cert-chain.pem')));
    const certs = await sidecars[1]!.admin('/certs');
    prove(
      'certificates as files: photo-backend’s Envoy (uid 1337) serves the SVID meshpilot keeps in its secret directory',
      toBackend?.status === 200 && certs.body.toLowerCase().includes(onDisk.serialNumber.toLowerCase()),
      `serial ${onDisk.serialNumber.toLowerCase().slice(0, 16)}… in ${path.join(secretDir, 'photo-ns', 'photo-backend')} and in Envoy’s /certs`,
    );
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    for (const s of sidecars) await s.stop();
    await cp?.stop();
    await net?.destroy();
    removeDirs();
  }
}
