import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseConfigFiles, parseConfigText } from '../config/index.js';
import { formatDiagnostic } from '../lib/index.js';
import type { MeshModel } from '../model/index.js';
import { compileInboundPolicy, evaluate, normalizeRequestPath, stripHostPort, type AuthzRequest, type Decision } from './index.js';

const WORKLOADS = `
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec:
  selector: { app: api }
  ports:
    - { name: http, port: 8080, targetPort: 8080 }
    - { name: tcp-db, port: 5432, targetPort: 5432 }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: api, namespace: shop }
spec: { address: 127.0.0.71, serviceAccount: api, labels: { app: api } }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: api, namespace: shop }
`;

function load(policies: string): MeshModel {
  const r = parseConfigText(`${WORKLOADS}\n---\n${policies}`, 'test.yaml');
  assert.ok(r.model, r.diagnostics.map(formatDiagnostic).join('\n'));
  return r.model;
}

const jwksNone = () => undefined;

function check(model: MeshModel, req: Partial<AuthzRequest>, protocol: 'http' | 'tcp' = 'http'): Decision {
  const w = model.workload('shop', 'api')!;
  const port = req.port ?? (protocol === 'http' ? 8080 : 5432);
  const compiled = compileInboundPolicy(model, w, port, protocol, jwksNone);
  return evaluate(compiled, { port, ...req });
}

const web = 'spiffe://cluster.local/ns/shop/sa/web';

describe('path normalization (as the inbound HCM does it)', () => {
  const ok = (raw: string) => {
    const n = normalizeRequestPath(raw);
    assert.equal(n.kind, 'ok', raw);
    return (n as { path: string }).path;
  };
  it('removes dot segments, merges slashes, strips the query', () => {
    assert.equal(ok('/admin?x=1'), '/admin');
    assert.equal(ok('/a/../admin'), '/admin');
    assert.equal(ok('/a/./b/../../admin'), '/admin');
    assert.equal(ok('//admin'), '/admin');
    assert.equal(ok('/x//y///z'), '/x/y/z');
    assert.equal(ok('/../../admin'), '/admin');
    assert.equal(ok('/a/..'), '/');
    assert.equal(ok('/a/.'), '/a/');
  });
  it('decodes unreserved escapes (so %2e%2e is a dot segment) and keeps others', () => {
    assert.equal(ok('/%2e%2e/admin'), '/admin');
    assert.equal(ok('/a/%2E%2E/admin'), '/admin');
    assert.equal(ok('/%61dmin'), '/admin');
    assert.equal(ok('/%252Fadmin'), '/%252Fadmin');
    assert.equal(ok('/a%20b'), '/a%20b');
  });
  it('treats backslashes as slashes', () => {
    assert.equal(ok('/\\admin'), '/admin');
    assert.equal(ok('/x\\..\\admin'), '/admin');
  });
  it('refuses escaped slashes by default, or unescapes them when configured', () => {
    for (const p of ['/%2Fadmin', '/%2fadmin', '/a%5Cb', '/a%5c..%5cadmin']) assert.equal(normalizeRequestPath(p).kind, 'reject', p);
    assert.deepEqual(normalizeRequestPath('/%2Fadmin', { escapedSlashes: 'UNESCAPE_AND_FORWARD' }), {
      kind: 'ok',
      path: '/admin',
      query: '',
    });
    assert.deepEqual(normalizeRequestPath('/x%5C..%5Cadmin', { escapedSlashes: 'UNESCAPE_AND_REDIRECT' }), {
      kind: 'redirect',
      path: '/admin',
      query: '',
    });
    assert.deepEqual(normalizeRequestPath('/%2Fadmin', { escapedSlashes: 'KEEP_UNCHANGED' }), { kind: 'ok', path: '/%2Fadmin', query: '' });
  });
  it('strips a numeric host port as strip_any_host_port does', () => {
    assert.equal(stripHostPort('api.example.com:8080'), 'api.example.com');
    assert.equal(stripHostPort('api.example.com'), 'api.example.com');
    assert.equal(stripHostPort('api.example.com:x'), 'api.example.com:x');
    assert.equal(stripHostPort('[::1]:80'), '[::1]');
    assert.equal(stripHostPort('[::1]'), '[::1]');
  });
});

describe('evaluate: Istio semantics', () => {
  it('allows everything when no policy applies', () => {
    const d = check(load('apiVersion: v1\nkind: ServiceAccount\nmetadata: { name: x, namespace: shop }'), {
      sourcePrincipal: web,
      path: '/',
    });
    assert.equal(d.verdict, 'allow');
    assert.equal(d.policy, undefined);
  });

  it('an ALLOW policy denies what it does not match and names the rule that allowed', () => {
    const m = load(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-web, namespace: shop }
spec:
  rules:
    - from: [{ source: { principals: [cluster.local/ns/shop/sa/other] } }]
    - from: [{ source: { principals: [cluster.local/ns/shop/sa/web] } }]
`);
    const a = check(m, { sourcePrincipal: web, path: '/' });
    assert.deepEqual([a.verdict, a.policy, a.rule], ['allow', 'shop/allow-web', '1']);
    const d = check(m, { sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/intruder', path: '/' });
    assert.deepEqual([d.verdict, d.status], ['deny', 403]);
    assert.equal(check(m, { path: '/' }).verdict, 'deny', 'plaintext has no principal');
  });

  it('DENY beats ALLOW; AUDIT never changes the verdict', () => {
    const m = load(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-all, namespace: shop }
spec:
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: shop }
spec:
  action: DENY
  rules: [{ to: [{ operation: { paths: [/admin, '/admin/*'] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: audit-all, namespace: shop }
spec:
  action: AUDIT
  rules: [{}]
`);
    const d = check(m, { sourcePrincipal: web, path: '/admin' });
    assert.deepEqual([d.verdict, d.policy, d.rule, d.audited], ['deny', 'shop/deny-admin', '0', ['ns[shop]-policy[audit-all]-rule[0]']]);
    const a = check(m, { sourcePrincipal: web, path: '/public' });
    assert.deepEqual([a.verdict, a.policy], ['allow', 'shop/allow-all']);
  });

  it('an ALLOW policy without rules allows nothing', () => {
    const m = load(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: nothing, namespace: shop }
spec: {}
`);
    assert.equal(check(m, { sourcePrincipal: web, path: '/' }).verdict, 'deny');
  });

  it('the photo app: frontend → backend and backend → datastore are allowed, frontend → datastore is denied', () => {
    const dir = fileURLToPath(new URL('../../../examples/photo-app/', import.meta.url));
    const r = parseConfigFiles(['mesh.yaml', 'policy.yaml'].map((f) => ({ fileName: f, text: readFileSync(dir + f, 'utf8') })));
    const m = r.model!;
    const call = (from: string, ns: string, to: string) => {
      const w = m.workload(ns, to)!;
      const c = compileInboundPolicy(m, w, 8080, 'http', jwksNone);
      return evaluate(c, { sourcePrincipal: `spiffe://cluster.local/ns/photo-ns/sa/${from}`, port: 8080, method: 'GET', path: '/' });
    };
    assert.equal(call('photo-frontend', 'photo-ns', 'photo-backend').verdict, 'allow');
    assert.equal(call('photo-backend', 'datastore-ns', 'datastore').verdict, 'allow');
    const d = call('photo-frontend', 'datastore-ns', 'datastore');
    assert.deepEqual([d.verdict, d.status], ['deny', 403]);
    // STRICT mesh-wide: a plaintext caller never gets in.
    const w = m.workload('photo-ns', 'photo-backend')!;
    const plain = evaluate(compileInboundPolicy(m, w, 8080, 'http', jwksNone), { port: 8080, path: '/' });
    assert.deepEqual([plain.verdict, plain.status], ['deny', 0]);
  });
});

describe('evaluate: request forms that have bypassed authorization elsewhere', () => {
  const m = load(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: shop }
spec:
  action: DENY
  rules:
    - to: [{ operation: { paths: [/admin, '/admin/*'] } }]
    - to: [{ operation: { hosts: [blocked.example.com] } }]
    - when: [{ key: 'request.headers[x-role]', values: [guest] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow, namespace: shop }
spec:
  rules:
    - from: [{ source: { principals: [cluster.local/ns/a/sa/x.y] } }]
    - to: [{ operation: { hosts: [api.example.com], paths: ['/api/*'] } }]
      when: [{ key: 'request.headers[x-tenant]', values: [acme] }]
`);
  const xy = 'spiffe://cluster.local/ns/a/sa/x.y';
  const denied = (req: Partial<AuthzRequest>, why?: RegExp) => {
    const d = check(m, req);
    assert.equal(d.verdict, 'deny', `${JSON.stringify(req)} → ${d.reason}`);
    if (why) assert.match(d.reason, why);
    return d;
  };
  const allowed = (req: Partial<AuthzRequest>) => {
    const d = check(m, req);
    assert.equal(d.verdict, 'allow', `${JSON.stringify(req)} → ${d.reason}`);
    return d;
  };

  it('a query does not hide /admin', () => {
    allowed({ sourcePrincipal: xy, path: '/ok' });
    for (const path of ['/admin', '/admin?x=1', '/admin/', '/admin/x?y=/z']) denied({ sourcePrincipal: xy, path }, /deny-admin/);
  });
  it('a fragment is refused (400) as Envoy refuses it, even on an allowed path', () => {
    for (const path of ['/admin#f', '/ok#f', '/ok?x=1#f']) assert.equal(denied({ sourcePrincipal: xy, path }, /fragment/).status, 400);
  });
  it('dot segments, doubled slashes and backslashes do not hide /admin', () => {
    for (const path of ['/x/../admin', '//admin', '/./admin', '/%2e%2e/admin', '/%2E/admin', '/\\admin', '/x\\..\\admin', '/%61dmin'])
      denied({ sourcePrincipal: xy, path }, /deny-admin/);
  });
  it('escaped slashes are refused (400), double-escaped ones are not a slash', () => {
    for (const path of ['/%2Fadmin', '/%2fadmin', '/x%2F..%2Fadmin', '/x%5C..%5Cadmin'])
      assert.equal(denied({ sourcePrincipal: xy, path }).status, 400);
    // %252F reaches the app as %2F once decoded: not /admin, and not matched as /admin here.
    assert.equal(allowed({ sourcePrincipal: xy, path: '/%252Fadmin' }).normalizedPath, '/%252Fadmin');
  });
  it('hosts match without regard to case or port', () => {
    for (const host of ['blocked.example.com', 'BLOCKED.Example.COM', 'blocked.example.com:8080', 'Blocked.Example.Com:443'])
      denied({ sourcePrincipal: xy, path: '/', host }, /deny-admin/);
    const tenant: [string, string][] = [['x-tenant', 'acme']];
    for (const host of ['api.example.com', 'API.EXAMPLE.COM:8080']) allowed({ path: '/api/v1', host, headers: tenant });
    denied({ path: '/api/v1', host: 'api.example.com.evil', headers: tenant });
  });
  it('a principal with dots matches only itself (exact matchers, never an unescaped regex)', () => {
    allowed({ sourcePrincipal: xy, path: '/' });
    for (const p of ['spiffe://cluster.local/ns/a/sa/xzy', 'spiffe://cluster.local/ns/a/sa/x.y.z', 'spiffe://cluster.local/ns/a/sa/x-y'])
      denied({ sourcePrincipal: p, path: '/' });
  });
  it('a header sent twice cannot hide a denied value, nor smuggle an allowed one', () => {
    denied({ sourcePrincipal: xy, path: '/', headers: [['x-role', 'guest']] }, /deny-admin/);
    denied(
      {
        sourcePrincipal: xy,
        path: '/',
        headers: [
          ['x-role', 'admin'],
          ['x-role', 'guest'],
        ],
      },
      /deny-admin/,
    );
    denied(
      {
        sourcePrincipal: xy,
        path: '/',
        headers: [
          ['X-Role', 'guest'],
          ['x-role', 'admin'],
        ],
      },
      /deny-admin/,
    );
    denied({ sourcePrincipal: xy, path: '/', headers: [['x-role', 'admin, guest']] }, /deny-admin/);
    allowed({ sourcePrincipal: xy, path: '/', headers: [['x-role', 'guests']] });
    // ALLOW matches the joined value: `acme,evil` is not `acme`.
    allowed({ path: '/api/x', host: 'api.example.com', headers: [['x-tenant', 'acme']] });
    denied({
      path: '/api/x',
      host: 'api.example.com',
      headers: [
        ['x-tenant', 'acme'],
        ['x-tenant', 'evil'],
      ],
    });
  });
});

describe('evaluate: JWT', () => {
  const m = load(`
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: shop }
spec:
  jwtRules:
    - issuer: https://issuer.example.com
      audiences: [api]
      jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}'
    - issuer: https://auth0.example.com/
      jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: require, namespace: shop }
spec:
  rules:
    - from: [{ source: { requestPrincipals: [https://issuer.example.com/alice, 'https://auth0.example.com//*'] } }]
    - from: [{ source: { requestPrincipals: ['*'] } }]
      to: [{ operation: { paths: ['/admin/*'] } }]
      when:
        - { key: 'request.auth.claims[groups]', values: [admins] }
        - { key: 'request.auth.claims[scope]', values: [write] }
`);
  const alice = { iss: 'https://issuer.example.com', sub: 'alice', aud: 'api' };
  it('a valid token with an allowed request principal passes', () => {
    assert.equal(check(m, { path: '/', jwt: alice }).verdict, 'allow');
    assert.equal(check(m, { path: '/', jwt: { iss: 'https://auth0.example.com/', sub: 'auth0|1' } }).verdict, 'allow');
  });
  it('a missing token passes jwt_authn but fails a rule that requires a request principal (403)', () => {
    const d = check(m, { path: '/' });
    assert.deepEqual([d.verdict, d.status], ['deny', 403]);
  });
  it('an invalid token or an unknown issuer is 401, a wrong audience 403 (as jwt_authn says), never treated as missing', () => {
    assert.equal(check(m, { path: '/', jwt: 'invalid' }).status, 401);
    assert.equal(check(m, { path: '/', jwt: { iss: 'https://evil.example.com', sub: 'alice' } }).status, 401);
    const aud = check(m, { path: '/', jwt: { ...alice, aud: 'other' } });
    assert.deepEqual([aud.verdict, aud.status], ['deny', 403]);
    assert.match(aud.reason, /^jwt_authn: .*audience/);
    assert.equal(check(m, { path: '/', jwt: { ...alice, aud: ['other', 'api'] } }).verdict, 'allow');
  });
  it('another subject of the issuer is not alice', () => {
    assert.equal(check(m, { path: '/', jwt: { ...alice, sub: 'bob' } }).status, 403);
    assert.equal(check(m, { path: '/', jwt: { ...alice, iss: 'https://issuer.example.com/alice', sub: 'x' } }).status, 401);
  });
  it('claims match strings, lists and space-delimited scopes', () => {
    const bob = { ...alice, sub: 'bob' };
    assert.equal(
      check(m, { path: '/admin/x', jwt: { ...bob, claims: { groups: ['dev', 'admins'], scope: 'read write' } } }).verdict,
      'allow',
    );
    assert.equal(check(m, { path: '/admin/x', jwt: { ...bob, claims: { groups: 'admins', scope: 'write' } } }).verdict, 'allow');
    assert.equal(check(m, { path: '/admin/x', jwt: { ...bob, claims: { groups: ['dev'], scope: 'read write' } } }).verdict, 'deny');
    assert.equal(check(m, { path: '/admin/x', jwt: { ...bob, claims: { groups: ['admins'], scope: 'read writer' } } }).verdict, 'deny');
  });
  it('a token is ignored where no RequestAuthentication applies', () => {
    const m2 = load(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: require, namespace: shop }
spec:
  rules: [{ from: [{ source: { requestPrincipals: ['*'] } }] }]
`);
    const d = check(m2, { path: '/', jwt: alice });
    assert.deepEqual([d.verdict, d.status], ['deny', 403]);
  });
});

describe('evaluate: TCP and mTLS modes', () => {
  const m = load(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: db, namespace: shop }
spec:
  rules:
    - from: [{ source: { principals: [cluster.local/ns/shop/sa/web] } }]
      to: [{ operation: { ports: ['5432'] } }]
    - to: [{ operation: { paths: ['/public'] } }]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: api, namespace: shop }
spec:
  selector: { matchLabels: { app: api } }
  mtls: { mode: STRICT }
  portLevelMtls: { '8080': { mode: PERMISSIVE } }
`);
  it('a TCP port allows one principal and refuses another; the HTTP-only rule matches nothing', () => {
    assert.equal(check(m, { sourcePrincipal: web }, 'tcp').verdict, 'allow');
    assert.equal(check(m, { sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/other' }, 'tcp').verdict, 'deny');
  });
  it('STRICT refuses plaintext, PERMISSIVE accepts it (and the rules still apply)', () => {
    assert.equal(check(m, {}, 'tcp').status, 0);
    assert.equal(check(m, { path: '/public' }).verdict, 'allow');
    assert.equal(check(m, { path: '/private' }).verdict, 'deny');
  });
});

describe('evaluate: dry-run policies (istio.io/dry-run) are shadow rules', () => {
  const model = load(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-headers
  namespace: shop
  annotations: { istio.io/dry-run: "true" }
spec:
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/headers"] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-ip
  namespace: shop
  annotations: { istio.io/dry-run: "true" }
spec:
  rules: [{ to: [{ operation: { paths: ["/ip"] } }] }]
`);

  it('a request a dry-run DENY matches is allowed, and the would-be denial is reported', () => {
    const d = check(model, { method: 'GET', path: '/headers' });
    assert.equal(d.verdict, 'allow');
    assert.deepEqual(d.dryRun, ['would deny by shop/deny-headers rule 0', 'would deny: no dry-run ALLOW policy matches']);
  });

  it('a dry-run ALLOW never denies: only its would-be result is reported', () => {
    const d = check(model, { method: 'GET', path: '/ip' });
    assert.equal(d.verdict, 'allow');
    assert.equal(d.reason, 'no policy denies it and no ALLOW policy applies');
    assert.deepEqual(d.dryRun, ['would allow by shop/allow-ip rule 0']);
  });

  it('an enforced DENY still denies next to a dry-run one', () => {
    const both = load(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: shop }
spec:
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/admin"] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-all-dry
  namespace: shop
  annotations: { istio.io/dry-run: "true" }
spec:
  action: DENY
  rules: [{}]
`);
    const d = check(both, { method: 'GET', path: '/admin' });
    assert.equal(d.verdict, 'deny');
    assert.equal(d.policy, 'shop/deny-admin');
    assert.deepEqual(d.dryRun, ['would deny by shop/deny-all-dry rule 0']);
    assert.equal(check(both, { method: 'GET', path: '/ok' }).verdict, 'allow');
  });

  it('a dry-run value that is not a boolean leaves the policy enforced (fail closed), with a warning', () => {
    const r = parseConfigText(
      `${WORKLOADS}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: d\n  namespace: shop\n  annotations: { istio.io/dry-run: "yes" }\nspec:\n  action: DENY\n  rules: [{}]\n`,
      'test.yaml',
    );
    assert.ok(r.model);
    assert.match(
      r.diagnostics.map(formatDiagnostic).join('\n'),
      /metadata\.annotations\["istio\.io\/dry-run"\]: 'yes' is not a boolean: the policy is enforced/,
    );
    assert.equal(check(r.model, { method: 'GET', path: '/' }).verdict, 'deny');
  });
});

describe('evaluate: newer Istio fields agree with the compiled RBAC', () => {
  it('serviceAccounts ns/sa (or sa, in the policy namespace) match that identity in any trust domain, as Istio; notServiceAccounts exclude one', () => {
    const model = load(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: sa, namespace: shop }
spec:
  rules: [{ from: [{ source: { serviceAccounts: [web, shop/old, other/x.y], notServiceAccounts: [shop/old] } }] }]
`);
    assert.equal(check(model, { sourcePrincipal: web }).verdict, 'allow');
    assert.equal(check(model, { sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/old' }).verdict, 'deny');
    assert.equal(check(model, { sourcePrincipal: 'spiffe://other.td/ns/shop/sa/web' }).verdict, 'allow', 'any trust domain, as Istio');
    assert.equal(check(model, { sourcePrincipal: 'spiffe://cluster.local/ns/other/sa/x.y' }).verdict, 'allow');
    assert.equal(check(model, { sourcePrincipal: 'spiffe://cluster.local/ns/other/sa/xzy' }).verdict, 'deny', 'a dot is a dot');
    assert.equal(check(model, { sourcePrincipal: 'spiffe://cluster.local/ns/xshop/sa/web' }).verdict, 'deny');
    assert.equal(check(model, { sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/webx' }).verdict, 'deny');
    assert.equal(check(model, {}).verdict, 'deny', 'a plaintext caller has no service account');
    assert.equal(check(model, { sourcePrincipal: web }, 'tcp').verdict, 'allow', 'serviceAccounts work on TCP too');
  });

  it('the condition source.serviceAccount matches as serviceAccounts do', () => {
    const model = load(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: sa-when, namespace: shop }
spec:
  action: DENY
  rules: [{ when: [{ key: source.serviceAccount, values: [web] }] }]
`);
    assert.equal(check(model, { sourcePrincipal: web }).verdict, 'deny');
    assert.equal(check(model, { sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/api' }).verdict, 'allow');
  });

  it('path templates: {*} is one segment, {**} any number at the end; the query is not part of the path', () => {
    const model = load(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: tpl, namespace: shop }
spec:
  rules: [{ to: [{ operation: { paths: ["/items/{*}/reviews", "/static/{**}"], notPaths: ["/static/{*}/secret"] } }] }]
`);
    const v = (path: string) => check(model, { method: 'GET', path }).verdict;
    assert.equal(v('/items/42/reviews'), 'allow');
    assert.equal(v('/items/42/reviews?x=1'), 'allow');
    assert.equal(v('/items/4/2/reviews'), 'deny');
    assert.equal(v('/items//reviews'), 'deny', 'an empty segment is merged away by normalization, leaving /items/reviews');
    assert.equal(v('/items/reviews'), 'deny');
    assert.equal(v('/static/'), 'allow');
    assert.equal(v('/static/css/a.css'), 'allow');
    assert.equal(v('/static'), 'deny');
    assert.equal(v('/static/x/secret'), 'deny');
    assert.equal(v('/static/x/y/secret'), 'allow', 'notPaths {*} is one segment only');
    assert.equal(v('/items/%2e%2e/reviews'), 'deny', 'dot segments are removed before matching');
  });

  it('targetRefs to a Service select its workloads', () => {
    const model = load(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: by-service, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/admin"] } }] }]
`);
    assert.equal(check(model, { method: 'GET', path: '/admin' }).verdict, 'deny');
    assert.equal(check(model, { method: 'GET', path: '/' }).verdict, 'allow');
  });

  it('spaceDelimitedClaims: a listed claim matches one of its space-separated values', () => {
    const model = load(`
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: shop }
spec:
  jwtRules:
    - issuer: https://issuer.example.com
      jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}'
      spaceDelimitedClaims: [roles]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: admins, namespace: shop }
spec:
  rules: [{ when: [{ key: "request.auth.claims[roles]", values: [admin] }] }]
`);
    const jwt = (roles: string) => ({ iss: 'https://issuer.example.com', sub: 's', claims: { roles } });
    assert.equal(check(model, { method: 'GET', path: '/', jwt: jwt('reader admin') }).verdict, 'allow');
    assert.equal(check(model, { method: 'GET', path: '/', jwt: jwt('reader administrator') }).verdict, 'deny');
  });
});
