// Issue 7 with real Envoy: AuthorizationPolicy enforced by the server's sidecar (HTTP and network
// RBAC), path rules that normalization keeps from being bypassed, PeerAuthentication migrating a
// service from PERMISSIVE to STRICT without restarting its Envoy (DESIGN.md scenario 5), and
// RequestAuthentication (jwt_authn) with claims forwarded to the app.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { TypeUrl } from '../src/proto/index.js';
import {
  eventually,
  httpRequest,
  startHttpUpstream,
  startTcpEcho,
  type EnvoyProcess,
  type HttpResponse,
  type HttpUpstream,
  type TcpEcho,
} from './harness/index.js';
import { nodeIdOf, startMesh, type TestMesh, type TestWorkload } from './kit/mesh.js';
import { APP_PORT, ids, photoAppConfig, photoAppPolicy, SERVICE_PORT, xfccUri } from './kit/photo-app.js';
import { inSeconds, makeIssuer, type TestIssuer } from './kit/policy-jwt.js';
import { closedWithoutAnswer, rawHttp, tcpProbe, type RawResponse } from './kit/policy-wire.js';

// The photo app on this file's own addresses (the example config, moved), so other test files never clash.
const frontend: TestWorkload = { name: 'photo-frontend', namespace: 'photo-ns', address: '127.0.0.21' };
const backend: TestWorkload = { name: 'photo-backend', namespace: 'photo-ns', address: '127.0.0.22' };
const datastore: TestWorkload = { name: 'datastore', namespace: 'datastore-ns', address: '127.0.0.23' };
const moved = (y: string) =>
  y.replace('127.0.0.11', frontend.address).replace('127.0.0.12', backend.address).replace('127.0.0.13', datastore.address);

// examples/policy/policy-e2e-mesh.yaml
const caller: TestWorkload = { name: 'caller', namespace: 'pol', address: '127.0.0.24' };
const other: TestWorkload = { name: 'other', namespace: 'pol', address: '127.0.0.25' };
const web: TestWorkload = { name: 'web', namespace: 'pol', address: '127.0.0.26' };
const db: TestWorkload = { name: 'db', namespace: 'pol', address: '127.0.0.27' };
const legacy: TestWorkload = { name: 'legacy', namespace: 'pol', address: '127.0.0.28' };
/** The workload without a sidecar: plaintext from its own address. */
const PLAIN_CLIENT_ADDRESS = '127.0.0.29';
const api: TestWorkload = { name: 'api', namespace: 'pol', address: '127.0.0.30' };
const DB_APP_PORT = 8306;
const DB_PORT = 9306;
const hostOf = (w: TestWorkload) => `${w.name}.${w.namespace}.svc.cluster.local:${SERVICE_PORT}`;
const ISSUER = 'https://issuer.pol.test';
const PAYLOAD_HEADER = 'x-jwt-payload';

/** legacy's PeerAuthentication, in the file the migration rewrites. */
const migration = (mode: 'PERMISSIVE' | 'STRICT') => `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: legacy
  namespace: pol
spec:
  selector:
    matchLabels:
      app: legacy
  mtls:
    mode: ${mode}
`;

const jwtRule = (iss: TestIssuer) => `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: api-jwt
  namespace: pol
spec:
  selector:
    matchLabels:
      app: api
  jwtRules:
    - issuer: ${iss.issuer}
      audiences: [api]
      jwks: '${iss.jwks}'
      outputPayloadToHeader: ${PAYLOAD_HEADER}
`;

function example(name: string): string {
  return readFileSync(fileURLToPath(new URL(`../../examples/policy/${name}`, import.meta.url)), 'utf8');
}

type Seen = { server: string; path: string; headers: Record<string, string> };

describe('security policy enforced by real Envoy sidecars (issue 7)', function () {
  this.timeout(120_000);
  let mesh: TestMesh;
  let iss: TestIssuer;
  let echo: TcpEcho | undefined;
  const apps = new Map<string, HttpUpstream>();
  const sidecars = new Map<string, EnvoyProcess>();

  before(async () => {
    iss = await makeIssuer(ISSUER);
    mesh = await startMesh({
      'mesh.yaml': photoAppConfig(moved),
      'policy.yaml': photoAppPolicy(),
      'pol-mesh.yaml': example('policy-e2e-mesh.yaml'),
      'pol-rules.yaml': example('policy-e2e-rules.yaml'),
      'pol-jwt.yaml': jwtRule(iss),
      'pol-migration.yaml': migration('PERMISSIVE'),
    });
    for (const w of [frontend, backend, datastore, web, legacy, api])
      apps.set(w.name, await startHttpUpstream({ host: w.address, port: APP_PORT, name: w.name }));
    echo = await startTcpEcho({ host: db.address, port: DB_APP_PORT });
    const all = [frontend, backend, datastore, caller, other, web, db, legacy, api];
    await Promise.all(all.map(async (w) => sidecars.set(w.name, await mesh.startSidecar(w))));
  });
  afterEach(function () {
    mesh?.envoys.dumpLogsIfFailed(this.currentTest);
    if (this.currentTest?.state === 'failed')
      for (const l of mesh.logLines.slice(-30)) console.error('meshpilot:', l.level, l.msg, JSON.stringify(l.fields));
  });
  after(async () => {
    await mesh?.stop();
    await Promise.all([...apps.values()].map((a) => a.close()));
    await echo?.close();
  });

  /** A request from a workload through its sidecar; `headers` may carry a token. */
  const call = (from: TestWorkload, to: TestWorkload, path = '/', headers: Record<string, string> = {}): Promise<HttpResponse> =>
    httpRequest({ host: from.address, port: OUTBOUND_HTTP_PORT, path, headers: { host: hostOf(to), ...headers } });
  /** The same, written byte for byte (for paths Node's client would not send as they are). */
  const rawCall = (from: TestWorkload, to: TestWorkload, target: string): Promise<RawResponse> =>
    rawHttp({ host: from.address, port: OUTBOUND_HTTP_PORT, target, headers: [['Host', hostOf(to)]] });
  /** Until the first request through this pair of sidecars is answered by the server side (not a 503 while secrets arrive). */
  const ready = (from: TestWorkload, to: TestWorkload, path = '/') =>
    eventually(
      async () => {
        const r = await call(from, to, path);
        return r.headers['x-envoy-upstream-service-time'] !== undefined && r;
      },
      { description: `${from.name} → ${to.name}`, timeoutMs: 20_000 },
    );
  const requestsTo = (w: TestWorkload) => apps.get(w.name)!.requestCount;

  it('photo-frontend → datastore is denied with 403 by the datastore’s sidecar, while the allowed hops work', async () => {
    const fb = await ready(frontend, backend, '/photos');
    assert.equal(fb.status, 200);
    assert.equal(xfccUri((fb.json as Seen).headers), ids.frontend);
    const bd = await ready(backend, datastore, '/rows');
    assert.equal(bd.status, 200);
    assert.equal(xfccUri((bd.json as Seen).headers), ids.backend);

    const before = requestsTo(datastore);
    const deniedBefore = (await sidecars.get(datastore.name)!.stat(`http.inbound_${SERVICE_PORT}.rbac.denied`)) ?? 0;
    const fd = await ready(frontend, datastore, '/rows');
    assert.equal(fd.status, 403);
    assert.equal(fd.body, 'RBAC: access denied');
    assert.equal(requestsTo(datastore), before, 'the datastore app never sees the request');
    const denied = (await sidecars.get(datastore.name)!.stat(`http.inbound_${SERVICE_PORT}.rbac.denied`)) ?? 0;
    assert.ok(denied > deniedBefore, `the datastore sidecar's RBAC counted the denial (${deniedBefore} → ${denied})`);
  });

  it('DENY beats ALLOW: caller may call web, but not /admin or /secret; other may not call it at all', async () => {
    const ok = await ready(caller, web, '/ok');
    assert.equal(ok.status, 200);
    assert.equal((ok.json as Seen).path, '/ok');
    const before = requestsTo(web);
    for (const path of ['/admin', '/admin/users', '/secret']) {
      const r = await call(caller, web, path);
      assert.deepEqual([r.status, r.body], [403, 'RBAC: access denied'], path);
    }
    const o = await ready(other, web, '/ok');
    assert.deepEqual([o.status, o.body], [403, 'RBAC: access denied'], 'other matches no ALLOW rule');
    assert.equal(requestsTo(web), before, 'web never saw a denied request');
  });

  it('a path rule holds against /admin/../secret, //admin, %2Fadmin and their cousins (bytes on the wire as written)', async () => {
    await ready(caller, web, '/ok');
    const before = requestsTo(web);
    const forms: [string, number][] = [
      ['/admin/../secret', 403],
      ['/ok/../secret', 403],
      ['//admin', 403],
      ['///secret', 403],
      ['/./admin', 403],
      ['/%61dmin', 403],
      ['/\\admin', 403],
      ['/admin?x=1', 403],
      ['/%2Fadmin', 400],
      ['/%2fadmin', 400],
      ['/ok%2F..%2Fadmin', 400],
      ['/ok%5C..%5Csecret', 400],
    ];
    const got = [];
    for (const [target] of forms) got.push([target, (await rawCall(caller, web, target)).status]);
    assert.deepEqual(got, forms);
    assert.equal(requestsTo(web), before, 'web never saw any of them');
    // A path that normalizes to an allowed one goes through, and the app gets the normalized path: what RBAC matched.
    const r = await rawCall(caller, web, '/admin/../ok//x');
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as Seen).path, '/ok/x');
  });

  it('a TCP service is open to one principal and refused to another (network RBAC)', async () => {
    const dbSidecar = sidecars.get(db.name)!;
    await eventually(async () => (await tcpProbe({ host: caller.address, port: DB_PORT, payload: 'ping' })) === 'echoed', {
      description: 'caller → db over tcp',
      timeoutMs: 20_000,
    });
    const deniedBefore = (await dbSidecar.stat('tcp.rbac.denied')) ?? 0;
    // tcp_proxy may open its upstream connection before network RBAC decides (on the first byte), so the
    // app can see a connection come and go; what matters is that no byte passes either way.
    assert.equal(await tcpProbe({ host: other.address, port: DB_PORT, payload: 'ping from other' }), 'refused');
    assert.equal(await tcpProbe({ host: other.address, port: DB_PORT, payload: 'and again' }), 'refused');
    assert.equal(await tcpProbe({ host: caller.address, port: DB_PORT, payload: 'ping again' }), 'echoed');
    // By the db sidecar's own counters: its network RBAC allowed caller's connections and denied other's.
    assert.equal((await dbSidecar.stat('tcp.rbac.denied')) ?? 0, deniedBefore + 2, 'network RBAC denied both of other’s');
    assert.ok(((await dbSidecar.stat('tcp.rbac.allowed')) ?? 0) >= 2, 'network RBAC allowed');
  });

  it('scenario 5: a client without a sidecar reaches PERMISSIVE legacy in plaintext, is refused after STRICT, mesh clients never fail, same Envoy', async () => {
    const legacySidecar = sidecars.get(legacy.name)!;
    const pid = legacySidecar.pid;
    const plain = () =>
      rawHttp({
        host: legacy.address,
        port: SERVICE_PORT,
        localAddress: PLAIN_CLIENT_ADDRESS,
        target: '/plain',
        headers: [['Host', hostOf(legacy)]],
        timeoutMs: 2_000,
      });
    const meshCall = await ready(caller, legacy, '/mesh');
    assert.equal(meshCall.status, 200);
    assert.equal(xfccUri((meshCall.json as Seen).headers), `spiffe://cluster.local/ns/pol/sa/caller`, 'mesh client over mTLS');
    const p = await plain();
    assert.equal(p.status, 200, 'plaintext accepted while PERMISSIVE');
    const seen = JSON.parse(p.body) as Seen;
    assert.equal(seen.path, '/plain');
    assert.equal(seen.headers['x-forwarded-client-cert'], undefined, 'no peer identity on plaintext');

    // Mesh clients call legacy throughout the switch; not one request may fail.
    let stop = false;
    const failures: string[] = [];
    let meshCalls = 0;
    const traffic = (async () => {
      for (let i = 0; i < 5_000 && !stop; i++) {
        meshCalls++;
        try {
          const r = await call(caller, legacy, '/during');
          if (r.status !== 200) failures.push(`${r.status} ${r.body}`);
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    })();
    try {
      const since = mesh.events.length;
      mesh.writeConfig('pol-migration.yaml', migration('STRICT'));
      await mesh.waitForAck(nodeIdOf(legacy), TypeUrl.Listener, since);
      // Refused means the TLS-only listener closed the plaintext connection without an answer.
      await eventually(() => plain().then(() => false, closedWithoutAnswer), {
        description: 'plaintext to legacy refused after STRICT',
        timeoutMs: 15_000,
      });
      // A few more mesh calls after the switch, on the new listener.
      const after = meshCalls;
      await eventually(() => meshCalls >= after + 5, { description: 'mesh calls after the switch' });
    } finally {
      stop = true;
      await traffic;
    }
    assert.deepEqual(failures, [], `${failures.length} of ${meshCalls} mesh calls failed`);
    assert.ok(meshCalls >= 5);
    // Refused for good, and by the same Envoy: no restart.
    await assert.rejects(plain(), (e) => closedWithoutAnswer(e), 'plaintext stays refused');
    assert.equal(legacySidecar.pid, pid, 'same Envoy process');
    assert.ok(legacySidecar.running, 'the Envoy never exited');
    const after = await call(caller, legacy, '/after');
    assert.equal(after.status, 200);
    assert.equal(xfccUri((after.json as Seen).headers), `spiffe://cluster.local/ns/pol/sa/caller`);
  });

  it('JWT: a valid token passes with its claims forwarded; a bad signature, expired token or wrong issuer is 401, a wrong audience 403; a missing token is 403 where a request principal is required', async () => {
    const claims = { sub: 'alice', aud: 'api', group: 'admins', exp: inSeconds(3600) };
    const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
    const valid = await iss.sign(claims);
    const ok = await ready(caller, api, '/orders');
    assert.deepEqual([ok.status, ok.body], [403, 'RBAC: access denied'], 'no token: 403 (a request principal is required)');

    const r = await call(caller, api, '/orders', bearer(valid));
    assert.equal(r.status, 200, r.body);
    const seen = r.json as Seen;
    const payload = JSON.parse(Buffer.from(seen.headers[PAYLOAD_HEADER] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
    assert.deepEqual(
      { iss: payload.iss, sub: payload.sub, aud: payload.aud, group: payload.group },
      { iss: ISSUER, sub: 'alice', aud: 'api', group: 'admins' },
      'the verified claims reach the app (outputPayloadToHeader)',
    );
    assert.equal(seen.headers.authorization, undefined, 'the token itself is not forwarded (forwardOriginalToken: false)');

    const [h, p, s] = valid.split('.');
    const badSig = `${h}.${p}.${s!.slice(0, 10)}${s![10] === 'A' ? 'B' : 'A'}${s!.slice(11)}`;
    const wrongIssuer = await (await makeIssuer('https://evil.pol.test')).sign(claims);
    const cases: [string, string, number, string][] = [
      ['bad signature', badSig, 401, 'Jwt verification fails'],
      ['expired', await iss.sign({ ...claims, exp: inSeconds(-3600) }), 401, 'Jwt is expired'],
      ['wrong issuer', wrongIssuer, 401, 'Jwt issuer is not configured'],
      // Envoy's jwt_authn answers an audience it does not accept with 403 (JwtAudienceNotAllowed), not 401.
      ['wrong audience', await iss.sign({ ...claims, aud: 'someone-else' }), 403, 'Audiences in Jwt are not allowed'],
    ];
    const before = requestsTo(api);
    const got = [];
    for (const [what, token] of cases) {
      const res = await call(caller, api, '/orders', bearer(token));
      got.push([what, res.status, res.body]);
    }
    assert.deepEqual(
      got,
      cases.map(([what, , status, body]) => [what, status, body]),
    );
    assert.equal(requestsTo(api), before, 'the api never saw a refused token');
  });
});
