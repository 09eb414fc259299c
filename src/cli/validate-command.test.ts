import assert from 'node:assert/strict';
import { runCli } from './testing.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerValidateCommand } from './validate-command.js';

const run = (...args: string[]) => runCli((program, io) => registerValidateCommand(program, io), ...args);

const photo = fileURLToPath(new URL('../../../examples/photo-app/', import.meta.url));

const MESH = `apiVersion: v1
kind: Service
metadata: { name: httpbin, namespace: foo }
spec:
  selector: { app: httpbin }
  ports: [{ name: http, port: 8000, targetPort: 80 }]
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: httpbin, namespace: foo }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: httpbin, namespace: foo }
spec: { address: 10.0.0.1, serviceAccount: httpbin, labels: { app: httpbin } }
`;

describe('cli: meshpilot validate', () => {
  let dir: string;
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-validate-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 0 on a clean config (the photo app)', async () => {
    const r = await run('validate', photo);
    assert.equal(r.exitCode, 0, r.out);
    assert.equal(r.out, 'valid: 0 errors, 0 warnings\n');
  });

  it('exits 1 on errors, naming file, line, column and field path', async () => {
    const p = file(
      'bad.yaml',
      `${MESH}---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: p, namespace: foo }\nspec:\n  mtls: { mode: STRCT }\n`,
    );
    const r = await run('validate', p);
    assert.equal(r.exitCode, 1);
    assert.match(r.out, new RegExp(`^error: ${p}:21:17: spec\\.mtls\\.mode: unknown mode 'STRCT'`, 'm'));
    assert.match(r.out, /^invalid: 1 error, 0 warnings$/m);
  });

  it('warnings alone exit 0; --strict makes them errors (exit 1)', async () => {
    const p = file('w.yaml', `${MESH}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: { name: httpbin, namespace: foo }\n`);
    const plain = await run('validate', p);
    assert.equal(plain.exitCode, 0);
    assert.match(plain.out, /^valid: 0 errors, 1 warning$/m);
    const strict = await run('validate', '--strict', p);
    assert.equal(strict.exitCode, 1);
    assert.match(strict.out, /^invalid: 0 errors, 1 warning \(--strict: warnings are errors\)$/m);
  });

  it('warns about a DestinationRule that disables TLS toward a STRICT server (its requests fail, as in Istio)', async () => {
    const sidecar = MESH.replace('labels: { app: httpbin }', 'labels: { app: httpbin, security.istio.io/tlsMode: istio }');
    const p = file(
      'dr.yaml',
      `${sidecar}---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict, namespace: foo }
spec: { mtls: { mode: STRICT } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: httpbin, namespace: foo }
spec:
  host: httpbin
  trafficPolicy: { tls: { mode: DISABLE } }
`,
    );
    const r = await run('validate', p);
    assert.equal(r.exitCode, 0, r.out);
    assert.match(
      r.out,
      new RegExp(
        `^warning: ${p}:\\d+:\\d+: spec\\.trafficPolicy\\.tls\\.mode: DestinationRule foo/httpbin: TLS mode DISABLE toward httpbin\\.foo\\.svc\\.cluster\\.local:8000, whose workload foo/httpbin requires mTLS`,
        'm',
      ),
    );
    const permissive = file(
      'ok.yaml',
      `${sidecar}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: httpbin, namespace: foo }
spec:
  host: httpbin
  trafficPolicy: { tls: { mode: DISABLE } }
`,
    );
    assert.equal((await run('validate', permissive)).out, 'valid: 0 errors, 0 warnings\n');
  });

  it('--output json gives every diagnostic with position and path', async () => {
    const p = file('w.yaml', `${MESH}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: { name: httpbin, namespace: foo }\n`);
    const r = await run('validate', '--output', 'json', p);
    assert.equal(r.exitCode, 0);
    assert.deepEqual(JSON.parse(r.out), {
      valid: true,
      errors: 0,
      warnings: 1,
      diagnostics: [
        {
          severity: 'warning',
          file: p,
          line: 18,
          column: 7,
          path: 'kind',
          message:
            'skipped Deployment foo/httpbin (apps/v1): meshpilot does not act on this kind; meshpilot takes workloads from WorkloadEntry objects (one per instance)',
        },
      ],
    });
  });

  it('a bad --output is a usage error (exit 2)', async () => {
    const r = await run('validate', '--output', 'yaml', photo);
    assert.equal(r.exitCode, 2);
    assert.match(r.err, /--output: 'yaml' is not one of text, json/);
  });

  it('warns about a namespace-less document, and --namespace names where it lands', async () => {
    const p = file('ns.yaml', 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n');
    const r = await run('validate', p);
    assert.match(
      r.out,
      new RegExp(`^warning: ${p}:4:3: metadata\\.namespace: no namespace: a lands in 'default'; write metadata\\.namespace$`, 'm'),
    );
    const n = await run('validate', '--namespace', 'foo', p);
    assert.match(n.out, /no namespace: a lands in 'foo' \(--namespace\)/);
  });

  it('warns about a policy that selects no workload', async () => {
    const p = file(
      'sel.yaml',
      `${MESH}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: nobody, namespace: foo }\nspec:\n  selector: { matchLabels: { app: nope } }\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: empty, namespace: bar }\nspec: { mtls: { mode: STRICT } }\n`,
    );
    const r = await run('validate', p);
    assert.equal(r.exitCode, 0);
    assert.match(
      r.out,
      /sel\.yaml:21:13: spec\.selector: AuthorizationPolicy foo\/nobody selects no workload: no WorkloadEntry in scope has these labels/,
    );
    assert.match(r.out, /sel\.yaml:\d+:\d+: spec: PeerAuthentication bar\/empty selects no workload in namespace bar/);
  });

  it('warns about a port no Service exposes, in AuthorizationPolicy ports and PeerAuthentication portLevelMtls', async () => {
    const p = file(
      'port.yaml',
      `${MESH}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: ports, namespace: foo }\nspec:\n  rules: [{ to: [{ operation: { ports: ["80", "8000"] } }] }]\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: p, namespace: foo }\nspec:\n  selector: { matchLabels: { app: httpbin } }\n  portLevelMtls: { "9090": { mode: DISABLE } }\n`,
    );
    const r = await run('validate', p);
    // 80 is the workload port the Service's 8000 sends to; 8000 is a Service port, not the workload's.
    assert.match(r.out, /spec\.rules\[0\]\.to\[0\]\.operation\.ports\[1\]: port 8000 is not a port any Service sends to/);
    assert.doesNotMatch(r.out, /ports\[0\]/);
    assert.match(r.out, /spec\.portLevelMtls\["9090"\]: port 9090 is not a port any Service sends to/);
  });

  it('warns about a principal in a foreign trust domain, not about aliases or cluster.local', async () => {
    const p = file(
      'td.yaml',
      `${MESH}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: td, namespace: foo }\nspec:\n  rules:\n    - from: [{ source: { principals: [other.example/ns/foo/sa/a, cluster.local/ns/foo/sa/b, "*/ns/foo/sa/c"] } }]\n      when: [{ key: source.principal, values: [evil.example/ns/x/sa/y] }]\n`,
    );
    const r = await run('validate', p);
    assert.match(r.out, /principals\[0\]: principal 'other\.example\/ns\/foo\/sa\/a' is in trust domain 'other\.example'/);
    assert.match(r.out, /when\[0\]\.values\[0\]: principal 'evil\.example\/ns\/x\/sa\/y' is in trust domain 'evil\.example'/);
    assert.doesNotMatch(r.out, /principals\[1\]|principals\[2\]/);
  });

  it('reports compiler diagnostics once, with the policy they are about', async () => {
    const p = file(
      'tcp.yaml',
      `${MESH.replace('{ name: http, port: 8000, targetPort: 80 }', '{ name: tcp-db, port: 5432 }')}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: paths, namespace: foo }\nspec:\n  rules: [{ to: [{ operation: { paths: ["/x"] } }] }]\n`,
    );
    const r = await run('validate', p);
    const lines = r.out.split('\n').filter((l) => l.includes('rule dropped on TCP ports'));
    assert.equal(lines.length, 1, r.out);
    assert.match(lines[0]!, /^warning: .*tcp\.yaml:\d+:\d+: spec\.rules\[0\]: .*\(AuthorizationPolicy foo\/paths\)$/);
  });
});
