// `make demo`: the photo app of the Istio Auth design on real Envoy sidecars, driven by
// `meshpilot serve` and set up with the real CLI, plus a VM workload with a node agent,
// a certificate rotation and a revocation, each shown as it happens. It prints what it
// proved and exits 0 only if every claim held.
import { printMeshPageLink } from './mesh-page-link.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OUTBOUND_HTTP_PORT } from '../../src/generate/index.js';
import { envoyPool, eventually, httpRequest, startHttpUpstream, type EnvoyProcess, type HttpUpstream } from '../harness/index.js';
import { leafSerials } from '../kit/certs.js';
import { formatCounts, startLoad } from '../kit/load.js';
import {
  APP_PORT,
  backend,
  backendHost,
  datastore,
  datastoreHost,
  frontend,
  loopbackAddress,
  photoAppConfig,
  photoAppVm,
  photoAppPolicy,
  SERVICE_PORT,
  xfccUri,
} from '../kit/photo-app.js';
import { controlPlaneProcess, runMeshpilot, runMeshpilotAsync, startMeshpilotProcess, type Child } from '../kit/processes.js';
import { mtlsGetOnce, readIssued } from '../kit/tls-client.js';
import { captureSection, captureUnavailable } from './capture-section.js';

const vm = { name: 'vm-client', namespace: 'photo-ns', address: loopbackAddress(14) };
const claims: { claim: string; held: boolean }[] = [];
function prove(claim: string, held: boolean, detail = ''): void {
  claims.push({ claim, held });
  console.log(`  ${held ? 'PROVED' : 'FAILED'}  ${claim}${detail ? `\n          ${detail}` : ''}`);
}
const short = (id: string | undefined) => id?.replace('spiffe://cluster.local/', '') ?? '-';

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'meshpilot-demo-'));
  const configDir = join(dir, 'config');
  const stateDir = join(dir, 'state');
  mkdirSync(configDir);
  writeFileSync(
    join(configDir, 'mesh.yaml'),
    photoAppConfig((y) => y.replace('  trustDomain: cluster.local', '  trustDomain: cluster.local\n  certTtl: 8s')),
  );
  writeFileSync(join(configDir, 'policy.yaml'), photoAppPolicy());
  writeFileSync(join(configDir, 'vm.yaml'), photoAppVm());
  const envoys = envoyPool();
  const apps: HttpUpstream[] = [];
  const sidecars = new Map<string, EnvoyProcess>();
  let agent: Child | undefined;
  const cp = await controlPlaneProcess({ configDir, stateDir });
  try {
    console.log('meshpilot demo: the photo app (Istio Auth design) on real Envoy sidecars\n');
    const noCapture = captureUnavailable();
    if (noCapture !== undefined) console.log(`0. Capture mode skipped (${noCapture}): the photo app runs in loopback mode below\n`);
    else {
      console.log('0. Capture mode: each workload in its own network namespace, apps unmodified, traffic redirected by iptables\n');
      await captureSection(prove, short);
      console.log('\nThe sections below run in loopback mode (per-workload 127.0.0.x addresses), where the VM agent joins too\n');
    }
    await cp.start();
    console.log(
      `  meshpilot serve: xDS/SDS/CSR over TLS on 127.0.0.1:${cp.xdsPort}, admin on 127.0.0.1:${cp.adminPort}, state in ${stateDir}`,
    );
    await printMeshPageLink(cp);
    for (const w of [frontend, backend, datastore]) {
      apps.push(await startHttpUpstream({ host: w.address, port: APP_PORT, name: w.name }));
      const args = ['bootstrap', '--state-dir', stateDir, '--namespace', w.namespace, '--workload', w.name, '--service-account', w.name];
      args.push('--address', w.address, '--xds-address', `127.0.0.1:${cp.xdsPort}`);
      sidecars.set(w.name, await envoys.start({ name: `${w.name}-sidecar`, bootstrap: JSON.parse(runMeshpilot(args)) as object }));
      console.log(
        `  ${w.name}: app on ${w.address}:${APP_PORT}, Envoy sidecar on ${w.address}:${SERVICE_PORT} (mTLS in) and :${OUTBOUND_HTTP_PORT} (out)`,
      );
    }

    console.log('\n1. Who may call whom (mTLS with SPIFFE identities, AuthorizationPolicy at the server sidecar)\n');
    const hops = [
      { from: frontend, to: backendHost, label: 'photo-frontend → photo-backend', want: 200 },
      { from: backend, to: datastoreHost, label: 'photo-backend  → datastore    ', want: 200 },
      { from: frontend, to: datastoreHost, label: 'photo-frontend → datastore    ', want: 403 },
    ];
    console.log('  hop                               status  caller seen by the server app            server');
    for (const h of hops) {
      const res = await eventually(
        () =>
          httpRequest({ host: h.from.address, port: OUTBOUND_HTTP_PORT, path: '/photos', headers: { host: h.to } }).then((r) =>
            r.status === h.want ? r : false,
          ),
        {
          timeoutMs: 15_000,
          description: h.label,
        },
      ).catch(() => undefined);
      const seen = res?.json as { server?: string; headers?: Record<string, string> } | undefined;
      console.log(
        `  ${h.label}   ${String(res?.status ?? 'err').padEnd(6)}  ${short(xfccUri(seen?.headers)).padEnd(40)} ${seen?.server ?? '(denied by its sidecar)'}`,
      );
      hops.find((x) => x === h)!.want = res?.status === h.want ? h.want : -1;
    }
    prove(
      'photo-frontend → photo-backend and photo-backend → datastore work over mTLS; each server sees the caller’s SPIFFE ID',
      hops[0]!.want === 200 && hops[1]!.want === 200,
    );
    prove('photo-frontend → datastore is denied (403) by the datastore sidecar', hops[2]!.want === 403);
    const handshakes = (await sidecars.get(backend.name)!.stat(`listener.${backend.address}_${SERVICE_PORT}.ssl.handshake`)) ?? 0;
    prove(
      'the hops are TLS by Envoy’s own counters',
      handshakes > 0,
      `photo-backend sidecar: ${handshakes} TLS handshakes on its inbound listener`,
    );

    console.log('\n2. A VM joins: the node agent makes its key locally and gets its SVID by CSR\n');
    writeFileSync(join(dir, 'root-cert.pem'), cp.rootPem());
    writeFileSync(
      join(dir, 'token'),
      runMeshpilot(['token', '--state-dir', stateDir, '--namespace', 'photo-ns', '--service-account', 'vm-client']).trim(),
    );
    const socket = join(dir, 'agent.sock');
    agent = startMeshpilotProcess('agent', [
      'agent',
      ...['--ca-address', `127.0.0.1:${cp.xdsPort}`, '--ca-root', join(dir, 'root-cert.pem'), '--token-file', join(dir, 'token')],
      ...[
        '--namespace',
        'photo-ns',
        '--service-account',
        'vm-client',
        '--sds-socket',
        socket,
        '--tls-server-name',
        'meshpilot.istio-system.svc',
        '--cert-ttl',
        '1h',
      ],
    ]);
    await agent.waitForLog((l) => l.includes('"svid issued"'), 'the VM SVID');
    const vmArgs = ['bootstrap', '--state-dir', stateDir, '--namespace', 'photo-ns', '--workload', vm.name, '--service-account', vm.name];
    vmArgs.push('--address', vm.address, '--xds-address', `127.0.0.1:${cp.xdsPort}`, '--agent-socket', socket);
    await envoys.start({ name: 'vm-envoy', bootstrap: JSON.parse(runMeshpilot(vmArgs)) as object });
    const fromVm = await eventually(
      () =>
        httpRequest({ host: vm.address, port: OUTBOUND_HTTP_PORT, path: '/', headers: { host: backendHost } }).then((r) =>
          r.status === 200 ? r : false,
        ),
      {
        timeoutMs: 15_000,
        description: 'vm → backend',
      },
    ).catch(() => undefined);
    const vmSeen = xfccUri((fromVm?.json as { headers?: Record<string, string> } | undefined)?.headers);
    prove(
      'the VM workload calls photo-backend over mTLS with the SVID its agent serves over a Unix socket',
      vmSeen === 'spiffe://cluster.local/ns/photo-ns/sa/vm-client',
      `photo-backend saw ${short(vmSeen)}`,
    );

    console.log('\n3. Rotation: 8-second certificates renewed at about half their life, while requests flow\n');
    const fe = sidecars.get(frontend.name)!;
    const load = startLoad({
      host: frontend.address,
      port: OUTBOUND_HTTP_PORT,
      hostHeader: backendHost,
      concurrency: 2,
      maxDurationMs: 40_000,
      pauseMs: 10,
    });
    const seen: string[] = [...(await leafSerials(fe))];
    await eventually(
      async () => {
        for (const s of await leafSerials(fe))
          if (!seen.includes(s)) {
            seen.push(s);
            console.log(`  photo-frontend’s SVID is now serial ${s.slice(0, 16)}…`);
          }
        return seen.length >= 3;
      },
      { timeoutMs: 25_000, intervalMs: 200, description: 'two rotations' },
    ).catch(() => undefined);
    const rotated = await load.stop();
    prove(
      'certificates rotate with no Envoy restart and no failed request',
      seen.length >= 3 && rotated.failed === 0,
      formatCounts('requests during rotation', rotated),
    );

    console.log('\n4. Revocation: `meshpilot ca revoke` on a certificate in use\n');
    const out = join(dir, 'stolen');
    const issued = await runMeshpilotAsync([
      'ca',
      'issue',
      '--state-dir',
      stateDir,
      '--namespace',
      'photo-ns',
      '--service-account',
      'photo-frontend',
      '--out',
      out,
      '--ttl',
      '1h',
    ]);
    const serial = /serial: ([0-9a-f]+)/.exec(issued)![1]!;
    const stolen = readIssued(out);
    const beforeRevoke = await mtlsGetOnce(backend.address, SERVICE_PORT, stolen);
    console.log(
      `  a client presenting photo-frontend’s certificate ${serial.slice(0, 16)}… straight to photo-backend’s sidecar: ${beforeRevoke}`,
    );
    const t0 = Date.now();
    await runMeshpilotAsync(['ca', 'revoke', '--state-dir', stateDir, '--serial', serial]);
    const refused = await eventually(async () => (await mtlsGetOnce(backend.address, SERVICE_PORT, stolen)) !== 200, {
      timeoutMs: 5_000,
      intervalMs: 50,
    }).then(
      () => true,
      () => false,
    );
    const after = Date.now() - t0;
    console.log(`  after revocation: refused at the TLS handshake ${after} ms later (new CRL pushed to every sidecar)`);
    const stillOk = (await httpRequest({ host: frontend.address, port: OUTBOUND_HTTP_PORT, path: '/', headers: { host: backendHost } }))
      .status;
    prove(
      'a revoked certificate is refused by its peers within seconds, without restarting any Envoy',
      beforeRevoke === 200 && refused && after < 5_000,
      `legitimate photo-frontend → photo-backend still answers ${stillOk}`,
    );
  } finally {
    await envoys.stopAll();
    await agent?.stop();
    await cp.current()?.stop();
    await Promise.all(apps.map((a) => a.close()));
    rmSync(dir, { recursive: true, force: true });
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
