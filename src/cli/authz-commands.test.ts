import assert from 'node:assert/strict';
import { runCli } from './testing.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerAuthzCommands } from './authz-commands.js';

const run = (...args: string[]) => runCli((program, io) => registerAuthzCommands(program, io), ...args);

const photo = fileURLToPath(new URL('../../../examples/photo-app/', import.meta.url));

describe('cli: meshpilot authz check', () => {
  it('the photo app: frontend → backend ALLOW (0), frontend → datastore DENY (3), naming the policy and rule', async () => {
    const ok = await run(
      'authz',
      'check',
      '--config',
      photo,
      '--destination',
      'photo-ns/photo-backend',
      '--source-principal',
      'cluster.local/ns/photo-ns/sa/photo-frontend',
    );
    assert.equal(ok.exitCode, 0, ok.err);
    assert.match(ok.out, /^ALLOW\n {2}policy: photo-ns\/photo-backend-allow-frontend\n {2}rule: 0\n/);
    const no = await run(
      'authz',
      'check',
      '--config',
      photo,
      '--destination',
      'datastore-ns/datastore',
      '--source-principal',
      'cluster.local/ns/photo-ns/sa/photo-frontend',
      '--path',
      '/x',
    );
    assert.equal(no.exitCode, 3);
    assert.match(no.out, /^DENY\n/);
    assert.match(no.out, /status: 403/);
    const fromBackend = await run(
      'authz',
      'check',
      '--config',
      photo,
      '--destination',
      'datastore-ns/datastore',
      '--source-principal',
      'spiffe://cluster.local/ns/photo-ns/sa/photo-backend',
    );
    assert.equal(fromBackend.exitCode, 0);
    const plaintext = await run('authz', 'check', '--config', photo, '--destination', 'datastore-ns/datastore');
    assert.equal(plaintext.exitCode, 3);
    assert.match(plaintext.out, /connection refused/);
  });

  describe('with paths, headers and claims', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'meshpilot-authz-'));
      writeFileSync(
        join(dir, 'mesh.yaml'),
        `
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec:
  selector: { app: api }
  ports: [{ name: http, port: 8080, targetPort: 8080 }, { name: tcp-db, port: 5432, targetPort: 5432 }]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: api, namespace: shop }
spec: { address: 127.0.0.95, serviceAccount: api, labels: { app: api } }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: api, namespace: shop }
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: shop }
spec:
  jwtRules:
    - issuer: https://issuer.example.com
      jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: shop }
spec:
  action: DENY
  rules:
    - to: [{ operation: { paths: [/admin, '/admin/*'] } }]
    - when: [{ key: 'request.headers[x-role]', values: [guest] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow, namespace: shop }
spec:
  rules:
    - from: [{ source: { namespaces: [shop] } }]
    - when: [{ key: 'request.auth.claims[groups]', values: [admins] }]
`,
      );
    });
    after(() => rmSync(dir, { recursive: true, force: true }));
    const check = (...args: string[]) => run('authz', 'check', '--config', join(dir, 'mesh.yaml'), '--destination', 'shop/api', ...args);

    it('normalizes the path before matching', async () => {
      const r = await check('--source-namespace', 'shop', '--path', '/x/../admin?y=1');
      assert.equal(r.exitCode, 3);
      assert.match(r.out, /policy: shop\/deny-admin\n {2}rule: 0/);
      assert.match(r.out, /normalized path: \/admin/);
      assert.equal((await check('--source-namespace', 'shop', '--path', '/%2Fadmin')).exitCode, 3);
      assert.equal((await check('--source-namespace', 'shop', '--path', '/public')).exitCode, 0);
    });
    it('joins repeated headers', async () => {
      const r = await check('--source-namespace', 'shop', '--header', 'x-role=admin', '--header', 'x-role=guest');
      assert.equal(r.exitCode, 3);
      assert.match(r.out, /rule: 1/);
    });
    it('matches claims of a token', async () => {
      const r = await check(
        '--jwt-issuer',
        'https://issuer.example.com',
        '--jwt-subject',
        'a',
        '--claim',
        'groups=dev',
        '--claim',
        'groups=admins',
      );
      assert.equal(r.exitCode, 0, r.out + r.err);
      assert.match(r.out, /policy: shop\/allow\n {2}rule: 1/);
      assert.equal((await check('--jwt-issuer', 'https://other.example.com', '--claim', 'groups=admins')).exitCode, 3);
      assert.equal((await check('--jwt-invalid')).exitCode, 3);
      assert.match((await check('--jwt', 'e30.e30.x')).out, /status: 401/);
    });
    it('checks a TCP port with network RBAC, where a DENY rule with HTTP-only fields denies more (with a warning)', async () => {
      const r = await check('--port', '5432', '--source-namespace', 'shop');
      assert.equal(r.exitCode, 3);
      assert.match(r.out, /policy: shop\/deny-admin/);
      assert.match(r.out, /port: 5432 \(tcp, mTLS PERMISSIVE\)/);
      assert.match(r.err, /warning: .*HTTP-only fields \(paths\) are ignored/);
    });
    it('exits 2 when the question cannot be answered', async () => {
      assert.equal((await check('--port', '9999')).exitCode, 2);
      assert.equal((await run('authz', 'check', '--config', join(dir, 'mesh.yaml'), '--destination', 'shop/nope')).exitCode, 2);
      assert.equal((await run('authz', 'check', '--config', join(dir, 'missing.yaml'), '--destination', 'shop/api')).exitCode, 2);
      assert.equal((await check('--header', 'novalue')).exitCode, 2);
    });
  });

  it('reports what a dry-run policy would do, without changing the verdict', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshpilot-dry-run-'));
    try {
      writeFileSync(
        join(dir, 'mesh.yaml'),
        [
          'apiVersion: v1\nkind: Service\nmetadata: { name: httpbin }\nspec:\n  selector: { app: httpbin }\n  ports: [{ name: http, port: 8000 }]',
          'apiVersion: v1\nkind: ServiceAccount\nmetadata: { name: httpbin }',
          'apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: { name: httpbin }\nspec: { address: 127.0.0.5, serviceAccount: httpbin, labels: { app: httpbin } }',
          'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: deny-path-headers\n  annotations: { "istio.io/dry-run": "true" }\nspec:\n  action: DENY\n  rules: [{ to: [{ operation: { paths: ["/headers"] } }] }]',
        ].join('\n---\n'),
      );
      const r = await run('authz', 'check', '--config', dir, '--namespace', 'foo', '--destination', 'foo/httpbin', '--path', '/headers');
      assert.equal(r.exitCode, 0, r.err);
      assert.match(r.out, /^ALLOW\n/);
      assert.match(r.out, /\n {2}dry-run: would deny by foo\/deny-path-headers rule 0\n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('cli: meshpilot authz check with a CUSTOM policy', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshpilot-authz-custom-'));
    writeFileSync(
      join(dir, 'custom.yaml'),
      `apiVersion: meshpilot.io/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec:
  extensionProviders:
    - name: ext
      envoyExtAuthzHttp: { service: ext-authz.shop.svc.cluster.local, port: 8000 }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: api, namespace: shop }
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec: { selector: { app: api }, ports: [{ name: http, port: 9080, targetPort: 8080 }] }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: api, namespace: shop }
spec: { address: 127.0.0.91, serviceAccount: api, labels: { app: api, security.istio.io/tlsMode: istio } }
---
apiVersion: v1
kind: Service
metadata: { name: ext-authz, namespace: shop }
spec: { selector: { app: ext-authz }, ports: [{ name: http, port: 8000 }] }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ext-authz, namespace: shop }
spec: { address: 127.0.0.92, serviceAccount: api, labels: { app: ext-authz } }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ext, namespace: shop }
spec:
  selector: { matchLabels: { app: api } }
  action: CUSTOM
  provider: { name: ext }
  rules: [{ to: [{ operation: { paths: ["/admin/*"] } }] }]
`,
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('says which requests go to the external authorizer first, and which do not', async () => {
    const args = ['authz', 'check', '--config', dir, '--destination', 'shop/api', '--source-principal', 'cluster.local/ns/shop/sa/api'];
    const guarded = await run(...args, '--path', '/admin/users');
    assert.equal(guarded.exitCode, 0, guarded.err);
    assert.match(
      guarded.out,
      /external authorizer: ext \(outbound\|8000\|\|ext-authz\.shop\.svc\.cluster\.local\), asked first by CUSTOM policy shop\/ext rule 0/,
    );
    assert.match(guarded.out, /depends on the external authorizer/);
    const open = await run(...args, '--path', '/public');
    assert.equal(open.exitCode, 0);
    assert.doesNotMatch(open.out, /external authorizer/);
  });
});
