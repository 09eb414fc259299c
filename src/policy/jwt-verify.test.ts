import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { parseConfigText } from '../config/index.js';
import { formatDiagnostic } from '../lib/index.js';
import { compileInboundPolicy, evaluate } from './index.js';
import { verifyJwt } from './jwt-verify.js';

const NOW = Date.UTC(2026, 0, 1);
const ISS = 'https://issuer.example.com';

describe('verifyJwt (as jwt_authn would) and the evaluator', () => {
  let priv: CryptoKey;
  let pubPem: string;
  let config: ReturnType<typeof compileInboundPolicy>;

  before(async () => {
    const kp = await generateKeyPair('RS256', { extractable: true });
    priv = kp.privateKey;
    pubPem = await exportSPKI(kp.publicKey);
    const jwk = { ...(await exportJWK(kp.publicKey)), kid: 'k1', alg: 'RS256' };
    const r = parseConfigText(
      `
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec: { selector: { app: api }, ports: [{ name: http, port: 8080, targetPort: 8080 }] }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: api, namespace: shop }
spec: { address: 127.0.0.91, serviceAccount: api, labels: { app: api } }
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
    - issuer: ${ISS}
      audiences: [api]
      jwks: '${JSON.stringify({ keys: [jwk] })}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: require, namespace: shop }
spec:
  rules: [{ from: [{ source: { requestPrincipals: ['${ISS}/alice'] } }] }]
`,
      'jwt.yaml',
    );
    assert.ok(r.model, r.diagnostics.map(formatDiagnostic).join('\n'));
    config = compileInboundPolicy(r.model, r.model.workload('shop', 'api')!, 8080, 'http', () => undefined);
  });

  const sign = (claims: Record<string, unknown>, header: Record<string, unknown> = { alg: 'RS256', kid: 'k1' }) =>
    new SignJWT(claims)
      .setProtectedHeader(header as { alg: string })
      .setIssuedAt(NOW / 1000)
      .sign(priv);
  const decide = async (token: string) => {
    const jwt = await verifyJwt(config, token, NOW);
    return evaluate(config, { port: 8080, path: '/', jwt });
  };
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const base = { iss: ISS, sub: 'alice', aud: 'api', exp: NOW / 1000 + 600 };

  it('a valid token passes and its request principal matches', async () => {
    const d = await decide(await sign(base));
    assert.deepEqual([d.verdict, d.status], ['allow', 200]);
  });
  it('alg none is refused (401)', async () => {
    const token = `${b64({ alg: 'none' })}.${b64(base)}.`;
    assert.equal((await decide(token)).status, 401);
  });
  it('an HS256 token signed with the public key as its secret is refused (401)', async () => {
    const head = b64({ alg: 'HS256', kid: 'k1' });
    const body = b64(base);
    const sig = createHmac('sha256', pubPem).update(`${head}.${body}`).digest('base64url');
    assert.equal((await decide(`${head}.${body}.${sig}`)).status, 401);
  });
  it('an unknown kid is refused (401)', async () => {
    assert.equal((await decide(await sign(base, { alg: 'RS256', kid: 'other' }))).status, 401);
  });
  it('a token from an issuer no rule lists is refused (401), never treated as missing', async () => {
    assert.equal((await decide(await sign({ ...base, iss: 'https://evil.example.com' }))).status, 401);
  });
  it('nbf in the future or an expired token is refused (401); a wrong audience too (403, as jwt_authn answers it)', async () => {
    assert.equal((await decide(await sign({ ...base, nbf: NOW / 1000 + 3600 }))).status, 401);
    assert.equal((await decide(await sign({ ...base, exp: NOW / 1000 - 3600 }))).status, 401);
    assert.equal((await decide(await sign({ ...base, aud: 'other' }))).status, 403);
  });
  it('garbage is refused (401); no token at all is a 403 where a principal is required', async () => {
    assert.equal((await decide('not.a.jwt')).status, 401);
    assert.equal(evaluate(config, { port: 8080, path: '/' }).status, 403);
  });
  it('a valid token for another subject is 403', async () => {
    assert.equal((await decide(await sign({ ...base, sub: 'bob' }))).status, 403);
  });
});
