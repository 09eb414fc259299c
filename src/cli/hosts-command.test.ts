import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerHostsCommand } from './hosts-command.js';

async function run(...args: string[]): Promise<{ out: string; err: string; exitCode: number }> {
  let out = '';
  let err = '';
  let exitCode = 0;
  const program = new Command('meshpilot').exitOverride();
  registerHostsCommand(program, { write: (s) => (out += s), warn: (s) => (err += s), setExitCode: (c) => (exitCode = c) });
  await program.parseAsync(args, { from: 'user' });
  return { out, err, exitCode };
}

const MESH = `apiVersion: meshpilot.io/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec: { captureMode: iptables, serviceCidr: 10.231.9.192/26, domainSuffix: mesh.test }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: api, namespace: shop }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: api, namespace: shop }
spec: { address: 10.231.9.11, serviceAccount: api, labels: { app: api, security.istio.io/tlsMode: istio } }
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec:
  clusterIP: 10.231.9.200
  selector: { app: api }
  ports: [{ name: http, port: 8080 }]
`;

describe('cli: meshpilot hosts', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'meshpilot-hosts-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the service names of the namespace, short names only within it', async () => {
    writeFileSync(join(dir, 'mesh.yaml'), MESH);
    const same = await run('hosts', '--config', dir, '--namespace', 'shop');
    assert.equal(same.exitCode, 0, same.err);
    assert.match(same.out, /^10\.231\.9\.200 api\.shop\.svc\.mesh\.test api\.shop api$/m);
    const other = await run('hosts', '--config', dir, '--namespace', 'web');
    assert.match(other.out, /^10\.231\.9\.200 api\.shop\.svc\.mesh\.test api\.shop$/m);
  });

  it('refuses a config with errors, printing where they are', async () => {
    writeFileSync(join(dir, 'mesh.yaml'), MESH.replace('clusterIP: 10.231.9.200', 'clusterIP: 10.231.8.200'));
    const r = await run('hosts', '--config', dir, '--namespace', 'shop');
    assert.equal(r.exitCode, 1);
    assert.equal(r.out, '');
    assert.match(r.err, /mesh\.yaml:19:\d+: spec\.clusterIP: 10\.231\.8\.200 is outside serviceCidr 10\.231\.9\.192\/26/);
  });
});
