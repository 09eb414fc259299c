// OpenID discovery with real Envoy (issue 15, item 7): a RequestAuthentication jwtRule with an
// issuer and no jwks/jwksUri gets its keys from <issuer>/.well-known/openid-configuration and the
// jwks_uri it names, over HTTPS from a local issuer; an issuer whose discovery document is
// malformed, or whose jwks_uri is on another scheme, gets no keys: its tokens are refused and the
// control plane names the rule (file, line, field).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createEphemeralCa, generateKeyPair } from '../src/ca/index.js';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { mustSpiffeId, mustTrustDomain } from '../src/identity/index.js';
import { systemClock, unwrap } from '../src/lib/index.js';
import { eventually, httpRequest } from './harness/index.js';
import { startMesh, type TestMesh } from './kit/mesh.js';
import { backend, backendHost, frontend, loopbackAddress, photoAppConfig } from './kit/photo-app.js';
import { makeIssuer, type TestIssuer } from './kit/policy-jwt.js';

const ISSUER_HOST = 'sc-issuer.test';
const ISSUER_ADDRESS = loopbackAddress(18);

describe('OpenID discovery with real Envoy (issue 15)', function () {
  this.timeout(120_000);
  let mesh: TestMesh;
  let server: Server;
  let good: TestIssuer;
  let broken: TestIssuer;
  let plain: TestIssuer;
  const served: string[] = [];

  const call = (token?: string) =>
    httpRequest({
      host: frontend.address,
      port: OUTBOUND_HTTP_PORT,
      path: '/photos',
      headers: { host: backendHost, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });

  before(async () => {
    const ca = createEphemeralCa({ trustDomain: mustTrustDomain('sc.test'), clock: systemClock });
    const key = generateKeyPair('ec-p256');
    const cert = unwrap(
      ca.signSvid({ spiffeId: mustSpiffeId('spiffe://sc.test/ns/sc/sa/issuer'), publicKey: key.publicKey, dnsNames: [ISSUER_HOST] }),
    );
    // The issuers are known only once the server has its port; the handler reads them when asked.
    const routes = new Map<string, () => string>();
    server = createServer({ cert: cert.chainPem.join(''), key: key.privateKey.export({ type: 'pkcs8', format: 'pem' }) }, (req, res) => {
      served.push(req.url ?? '');
      const body = routes.get(req.url ?? '');
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' }).end(body?.() ?? '');
    });
    await new Promise<void>((r) => server.listen(0, ISSUER_ADDRESS, r));
    const base = `https://${ISSUER_HOST}:${(server.address() as AddressInfo).port}`;
    good = await makeIssuer(`${base}/realm`);
    broken = await makeIssuer(`${base}/broken/`);
    plain = await makeIssuer(`${base}/plain`);
    routes.set('/realm/.well-known/openid-configuration', () => JSON.stringify({ issuer: good.issuer, jwks_uri: `${base}/realm/keys` }));
    routes.set('/realm/keys', () => good.jwks);
    routes.set('/broken/.well-known/openid-configuration', () => '{"issuer": "broken", jwks_uri: nope');
    routes.set('/plain/.well-known/openid-configuration', () =>
      JSON.stringify({ jwks_uri: `http://${ISSUER_HOST}:${(server.address() as AddressInfo).port}/plain/keys` }),
    );

    const policy = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: backend-oidc, namespace: photo-ns }
spec:
  selector: { matchLabels: { app: photo-backend } }
  jwtRules:
    - issuer: "${good.issuer}"
    - issuer: "${broken.issuer}"
    - issuer: "${plain.issuer}"
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: backend-require-jwt, namespace: photo-ns }
spec:
  selector: { matchLabels: { app: photo-backend } }
  action: ALLOW
  rules:
    - from: [{ source: { requestPrincipals: ["*"] } }]
`;
    mesh = await startMesh(
      { 'mesh.yaml': photoAppConfig(), 'oidc.yaml': policy },
      {
        apps: [frontend, backend],
        jwks: {
          jwksCa: ca.trustBundle().pem,
          // The issuer runs on loopback: private hosts allowed, plain HTTP still refused.
          jwksFetchPolicy: { allowPrivateHosts: true },
          jwksLookup: async (host) => (host === ISSUER_HOST ? [{ address: ISSUER_ADDRESS, family: 4 }] : []),
        },
      },
    );
    await mesh.startSidecar(frontend);
    await mesh.startSidecar(backend);
  });
  afterEach(function () {
    mesh?.dumpIfFailed(this.currentTest);
  });
  after(async () => {
    await mesh?.stop();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  });

  it('finds the keys of an issuer by discovery over HTTPS: its tokens are accepted', async () => {
    const token = await good.sign({ sub: 'alice' });
    await eventually(async () => (await call(token)).status === 200, { description: 'a token of the discovered issuer accepted' });
    assert.ok(served.includes('/realm/.well-known/openid-configuration') && served.includes('/realm/keys'));
    assert.equal((await call()).status, 403, 'no token: the ALLOW policy needs a request principal');
    assert.equal((await call(await good.sign({ sub: 'bob' }, { kid: 'other' }))).status, 401, 'a key the issuer does not publish');
  });

  it('refuses tokens of an issuer whose discovery document is malformed, naming file, line and field', async () => {
    assert.equal((await call(await broken.sign({ sub: 'mallory' }))).status, 401);
    const d = await eventually(
      () =>
        mesh.logLines.find((l) => l.msg === 'policy diagnostic' && /malformed discovery document/.test(String(l.fields.message))) ?? false,
      { description: 'the diagnostic of the malformed discovery document' },
    );
    assert.equal(d.fields.path, 'spec.jwtRules[1].issuer');
    assert.match(String(d.fields.file), /oidc\.yaml$/);
    assert.equal(d.fields.line, 8, 'the line of the second jwtRule');
  });

  it('refuses a jwks_uri on another scheme (an https document pointing at http): its tokens are refused', async () => {
    assert.equal((await call(await plain.sign({ sub: 'eve' }))).status, 401);
    await eventually(
      () =>
        mesh.logLines.some(
          (l) =>
            l.msg === 'policy diagnostic' && l.fields.path === 'spec.jwtRules[2].issuer' && /another scheme/.test(String(l.fields.message)),
        ),
      { description: 'the diagnostic of the jwks_uri on another scheme' },
    );
    assert.ok(!served.includes('/plain/keys'), 'the http jwks_uri was never fetched');
    // The good issuer keeps working beside them.
    assert.equal((await call(await good.sign({ sub: 'alice' }))).status, 200);
  });
});
