// The agreement test of issue 7: every row is one request sent through real Envoy sidecars AND asked
// of the real `meshpilot authz check` CLI over the same config files; the two verdicts (and, for a
// denied HTTP request, the status: 400, 401 or 403) must be identical. The rows include every
// request form that has bypassed authorization in other meshes. Requests are written byte for byte
// on a raw socket to the caller's sidecar (its outbound listener), so `%2F`, `\`, `#` and repeated
// headers reach the proxies exactly as the row says.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generateKeyPair } from '../src/ca/index.js';
import { OUTBOUND_HTTP_PORT } from '../src/generate/index.js';
import { mustSpiffeId } from '../src/identity/index.js';
import { unwrap } from '../src/lib/index.js';
import { eventually, startHttpUpstream, startTcpEcho, type HttpUpstream, type TcpEcho } from './harness/index.js';
import { startMesh, type TestMesh, type TestWorkload } from './kit/mesh.js';
import { authzCheck, mapLimit, type CliVerdict } from './kit/policy-cli.js';
import { hmacWithPublicKey, inSeconds, makeIssuer, strangerKey, unsignedToken, type TestIssuer } from './kit/policy-jwt.js';
import { closedWithoutAnswer, rawHttp, tcpProbe, type RawTls } from './kit/policy-wire.js';

const target: TestWorkload = { name: 'target', namespace: 'agree', address: '127.0.0.40' };
const db: TestWorkload = { name: 'db', namespace: 'agree', address: '127.0.0.41' };
const caller: TestWorkload = { name: 'caller', namespace: 'agree', address: '127.0.0.42' };
const xy: TestWorkload = { name: 'xy', namespace: 'a', address: '127.0.0.43', serviceAccount: 'x.y' };
const xzy: TestWorkload = { name: 'xzy', namespace: 'a', address: '127.0.0.44', serviceAccount: 'xzy' };
/** A client without a sidecar: plaintext straight to the target's inbound port. */
const PLAIN_ADDRESS = '127.0.0.45';
const APP_PORT = 8080;
const HTTP_PORT = 9080;
const DB_APP_PORT = 8306;
const DB_PORT = 9306;
const TARGET_HOST = `target.agree.svc.cluster.local:${HTTP_PORT}`;
const ISSUER = 'https://issuer.agree.test';

const clients = { caller, xy, xzy } as const;
type ClientName = keyof typeof clients | 'plain';
const principalOf = (w: TestWorkload) => `cluster.local/ns/${w.namespace}/sa/${w.serviceAccount ?? w.name}`;

type TokenName =
  'valid' | 'admins' | 'users' | 'none' | 'hs256' | 'unknownKid' | 'otherIssuer' | 'notYet' | 'expired' | 'wrongAud' | 'badSig';

/** One request of the table. */
interface Row {
  readonly from: ClientName;
  /** `tcp` rows open a connection to db and send a few bytes; the rest are HTTP requests to target. */
  readonly proto?: 'http' | 'tcp';
  readonly method?: string;
  /** The request target exactly as written on the wire. */
  readonly target?: string;
  readonly host?: string;
  readonly headers?: readonly (readonly [string, string])[];
  readonly jwt?: TokenName;
  /** Where the token goes: `Authorization: Bearer` (default) or the `access_token` query parameter. */
  readonly jwtIn?: 'header' | 'param';
  /** What Istio's semantics say; both sides must also agree with it. */
  readonly expect: 'allow' | 'deny';
  /**
   * `direct`: written over mTLS with the caller's SVID straight to target's sidecar, for a form
   * the client sidecar refuses itself (so the server's handling is what is compared).
   */
  readonly via?: 'direct';
  /** The client sidecar refuses this request itself (its HCM, before any routing). */
  readonly clientRefuses?: true;
  /** For denied HTTP rows: the status the caller must see. */
  readonly status?: 400 | 401 | 403;
  readonly note: string;
}

const ROWS: readonly Row[] = [
  { from: 'caller', target: '/public', expect: 'allow', note: 'allowed principal' },
  { from: 'caller', target: '/admin', expect: 'deny', status: 403, note: 'DENY beats ALLOW' },
  { from: 'caller', target: '/admin?x=1', expect: 'deny', status: 403, note: 'query is not part of the path' },
  { from: 'caller', target: '/admin#f', clientRefuses: true, expect: 'deny', status: 400, note: 'a fragment is refused (client sidecar)' },
  { from: 'caller', target: '/admin#f', via: 'direct', expect: 'deny', status: 400, note: 'a fragment is refused (by the server)' },
  { from: 'caller', target: '/public#f', via: 'direct', expect: 'deny', status: 400, note: 'even on an allowed path' },
  { from: 'caller', target: '/admin/x', expect: 'deny', status: 403, note: 'prefix rule /admin/*' },
  { from: 'caller', target: '/public/../admin', expect: 'deny', status: 403, note: 'dot-dot segment' },
  { from: 'caller', target: '/./admin', expect: 'deny', status: 403, note: 'dot segment' },
  { from: 'caller', target: '//admin', expect: 'deny', status: 403, note: 'merged slashes' },
  { from: 'caller', target: '/public//..//admin', expect: 'allow', note: 'the app gets /public/admin, as RBAC saw it' },
  { from: 'caller', target: '/public/..//admin', expect: 'deny', status: 403, note: 'dot-dot then doubled slash' },
  { from: 'caller', target: '/%61dmin', expect: 'deny', status: 403, note: 'escaped unreserved character' },
  { from: 'caller', target: '/%2Fadmin', expect: 'deny', status: 400, note: '%2F escaped slash' },
  { from: 'caller', target: '/%2fadmin', expect: 'deny', status: 400, note: '%2f escaped slash' },
  { from: 'caller', target: '/public%2F..%2Fadmin', expect: 'deny', status: 400, note: '%2F dot-dot' },
  { from: 'caller', target: '/public%5C..%5Cadmin', expect: 'deny', status: 400, note: '%5C escaped backslash' },
  { from: 'caller', target: '/%252Fadmin', expect: 'allow', note: '%252F stays %2F (no double decoding)' },
  { from: 'caller', target: '/public/..%252Fadmin', expect: 'allow', note: '%252F never becomes a slash' },
  { from: 'caller', target: '/\\admin', expect: 'deny', status: 403, note: 'backslash is a slash' },
  { from: 'caller', target: '/public\\..\\admin', expect: 'deny', status: 403, note: 'backslash dot-dot' },
  { from: 'caller', target: '/ADMIN', expect: 'allow', note: 'paths are case-sensitive (as in Istio)' },
  { from: 'caller', target: '/h/deny', expect: 'deny', status: 403, note: 'host with port' },
  { from: 'caller', target: '/h/deny', host: 'TARGET.Agree.SVC.cluster.local:9080', expect: 'deny', status: 403, note: 'host case' },
  { from: 'caller', target: '/h/deny', host: 'target.agree.svc.cluster.local', expect: 'deny', status: 403, note: 'host without port' },
  { from: 'caller', target: '/h/deny', host: 'TARGET.AGREE.SVC.CLUSTER.LOCAL', expect: 'deny', status: 403, note: 'host upper, no port' },
  { from: 'caller', target: '/h/other', expect: 'allow', note: 'host rule needs its path too' },
  { from: 'xy', target: '/xy/data', expect: 'allow', note: 'principal with a dot' },
  { from: 'xzy', target: '/xy/data', expect: 'deny', status: 403, note: 'x.y never matches xzy' },
  { from: 'xy', method: 'POST', target: '/xy/data', expect: 'deny', status: 403, note: 'method rule' },
  { from: 'xy', target: '/public', expect: 'deny', status: 403, note: 'no rule for x.y there' },
  { from: 'caller', target: '/xy/data', expect: 'deny', status: 403, note: 'notPaths excludes it' },
  { from: 'caller', target: '/public', headers: [['x-block', 'yes']], expect: 'deny', status: 403, note: 'DENY on a header' },
  {
    from: 'caller',
    target: '/public',
    headers: [
      ['x-block', 'no'],
      ['x-block', 'yes'],
    ],
    expect: 'deny',
    status: 403,
    note: 'header twice: second value denied',
  },
  {
    from: 'caller',
    target: '/public',
    headers: [
      ['x-block', 'yes'],
      ['x-block', 'no'],
    ],
    expect: 'deny',
    status: 403,
    note: 'header twice: first value denied',
  },
  { from: 'caller', target: '/public', headers: [['x-block', 'no']], expect: 'allow', note: 'other header value' },
  { from: 'caller', target: '/env/a', headers: [['x-env', 'prod']], expect: 'allow', note: 'ALLOW on a header and a namespace' },
  {
    from: 'caller',
    target: '/env/a',
    headers: [
      ['x-env', 'prod'],
      ['x-env', 'dev'],
    ],
    expect: 'deny',
    status: 403,
    note: 'header twice: joined value is not prod',
  },
  { from: 'xy', target: '/env/a', headers: [['x-env', 'prod']], expect: 'deny', status: 403, note: 'namespace a is not agree' },
  { from: 'caller', target: '/jwt/a', jwt: 'valid', expect: 'allow', note: 'valid token' },
  { from: 'xzy', target: '/jwt/a', jwt: 'valid', expect: 'allow', note: 'request principal, any peer' },
  { from: 'caller', target: '/jwt/a', jwt: 'valid', jwtIn: 'param', expect: 'allow', note: 'token in ?access_token=' },
  { from: 'caller', target: '/jwt/a', expect: 'deny', status: 403, note: 'missing token, principal required' },
  { from: 'caller', target: '/jwt/a', jwt: 'none', expect: 'deny', status: 401, note: 'alg: none' },
  { from: 'caller', target: '/jwt/a', jwt: 'hs256', expect: 'deny', status: 401, note: 'HS256 with the public key as secret' },
  { from: 'caller', target: '/jwt/a', jwt: 'unknownKid', expect: 'deny', status: 401, note: 'unknown kid' },
  { from: 'caller', target: '/jwt/a', jwt: 'otherIssuer', expect: 'deny', status: 401, note: 'issuer no rule lists' },
  { from: 'caller', target: '/jwt/a', jwt: 'notYet', expect: 'deny', status: 401, note: 'nbf in the future' },
  { from: 'caller', target: '/jwt/a', jwt: 'expired', expect: 'deny', status: 401, note: 'expired' },
  // Envoy's jwt_authn answers a token for another audience with 403 (JwtAudienceNotAllowed), not 401.
  { from: 'caller', target: '/jwt/a', jwt: 'wrongAud', expect: 'deny', status: 403, note: 'wrong audience (jwt_authn: 403)' },
  { from: 'caller', target: '/public', jwt: 'wrongAud', expect: 'deny', status: 403, note: 'wrong audience where none is needed' },
  { from: 'caller', target: '/jwt/a', jwt: 'badSig', expect: 'deny', status: 401, note: 'bad signature' },
  { from: 'caller', target: '/public', jwt: 'badSig', expect: 'deny', status: 401, note: 'invalid token where none is needed' },
  { from: 'caller', target: '/public', jwt: 'otherIssuer', expect: 'deny', status: 401, note: 'unknown issuer is not "missing"' },
  { from: 'xzy', target: '/claims/x', jwt: 'admins', expect: 'allow', note: 'claim group=admins' },
  { from: 'caller', target: '/claims/x', jwt: 'users', expect: 'deny', status: 403, note: 'claim group=users' },
  { from: 'caller', target: '/claims/x', expect: 'deny', status: 403, note: 'claim rule, no token' },
  { from: 'plain', target: '/public', expect: 'deny', note: 'plaintext to a STRICT port' },
  { from: 'caller', proto: 'tcp', expect: 'allow', note: 'TCP: allowed principal and port' },
  { from: 'xy', proto: 'tcp', expect: 'deny', note: 'TCP: DENY rule with an HTTP-only field denies more' },
  { from: 'xzy', proto: 'tcp', expect: 'deny', note: 'TCP: principal not listed' },
];

/** What Envoy did with a row. */
interface EnvoyOutcome {
  readonly verdict: 'allow' | 'deny';
  /** HTTP status, or 0 when the connection was refused or closed. */
  readonly status: number;
  /** Where the answer came from: the server app, the server's sidecar (through the client's), or the connection. */
  readonly by: string;
  /** The path the app received (allowed HTTP requests). */
  readonly appPath?: string;
}

describe('authz agreement: real Envoy and `meshpilot authz check` give the same verdict', function () {
  this.timeout(120_000);
  let mesh: TestMesh;
  let app: HttpUpstream | undefined;
  let echo: TcpEcho | undefined;
  const tokens = {} as Record<TokenName, string>;
  const svids = new Map<string, RawTls>();

  before(async () => {
    const iss = await makeIssuer(ISSUER);
    const other = await makeIssuer('https://other.agree.test');
    const base = { sub: 'alice', aud: 'target', exp: inSeconds(3600) };
    tokens.valid = await iss.sign(base);
    tokens.admins = await iss.sign({ ...base, group: 'admins' });
    tokens.users = await iss.sign({ ...base, group: 'users' });
    tokens.none = unsignedToken({ ...base, iss: ISSUER });
    tokens.hs256 = await hmacWithPublicKey(iss, base);
    tokens.unknownKid = await iss.sign(base, { kid: 'unknown-kid', key: await strangerKey() });
    tokens.otherIssuer = await other.sign(base);
    tokens.notYet = await iss.sign({ ...base, nbf: inSeconds(3600) });
    tokens.expired = await iss.sign({ ...base, exp: inSeconds(-3600) });
    tokens.wrongAud = await iss.sign({ ...base, aud: 'someone-else' });
    const [h, p, s] = tokens.valid.split('.');
    tokens.badSig = `${h}.${p}.${s!.slice(0, 10)}${s![10] === 'A' ? 'B' : 'A'}${s!.slice(11)}`;

    mesh = await startMesh({
      'mesh.yaml': example('agreement-mesh.yaml'),
      'policy.yaml': example('agreement-policy.yaml'),
      'jwt.yaml': requestAuthentication(iss),
    });
    app = await startHttpUpstream({ host: target.address, port: APP_PORT, name: 'target' });
    echo = await startTcpEcho({ host: db.address, port: DB_APP_PORT });
    await Promise.all([target, db, caller, xy, xzy].map((w) => mesh.startSidecar(w)));
    // Every hop has its secrets and endpoints once an allowed request goes through.
    for (const w of [caller, xy, xzy]) {
      await eventually(
        async () => {
          const r = await sendHttp(w, { from: 'caller', target: '/warm-up', expect: 'deny', note: '' });
          return r.by === 'target app' || r.by.startsWith('target sidecar: RBAC');
        },
        { description: `${w.name} → target`, timeoutMs: 20_000 },
      );
    }
    await eventually(async () => (await tcpProbe({ host: caller.address, port: DB_PORT, payload: 'warm' })) === 'echoed', {
      description: 'caller → db (tcp)',
      timeoutMs: 20_000,
    });
  });
  afterEach(function () {
    mesh?.envoys.dumpLogsIfFailed(this.currentTest);
    if (this.currentTest?.state === 'failed')
      for (const l of mesh.logLines.slice(-30)) console.error('meshpilot:', l.level, l.msg, JSON.stringify(l.fields));
  });
  after(async () => {
    await mesh?.stop();
    await app?.close();
    await echo?.close();
  });

  async function sendHttp(w: TestWorkload, row: Row): Promise<EnvoyOutcome> {
    const headers: [string, string][] = [
      ['Host', row.host ?? TARGET_HOST],
      ...(row.headers ?? []).map(([k, v]) => [k, v] as [string, string]),
    ];
    let path = row.target ?? '/';
    if (row.jwt && row.jwtIn === 'param') path += `${path.includes('?') ? '&' : '?'}access_token=${tokens[row.jwt]}`;
    else if (row.jwt) headers.push(['Authorization', `Bearer ${tokens[row.jwt]}`]);
    const direct = row.via === 'direct';
    const res = await rawHttp({
      ...(direct ? { host: target.address, port: HTTP_PORT, tls: await svidOf(w) } : { host: w.address, port: OUTBOUND_HTTP_PORT }),
      method: row.method ?? 'GET',
      target: path,
      headers,
    });
    const seen = res.status === 200 ? (JSON.parse(res.body) as { server?: string; path?: string }) : undefined;
    const fromApp = seen?.server === 'target';
    // The client sidecar's router adds x-envoy-upstream-service-time only to an answer it got from upstream.
    const upstream = direct || res.headers['x-envoy-upstream-service-time'] !== undefined;
    const body = res.body.replace(/\s+/g, ' ').slice(0, 40);
    return {
      verdict: fromApp ? 'allow' : 'deny',
      status: res.status,
      by: fromApp ? 'target app' : `${upstream ? 'target sidecar' : 'client sidecar'}: ${body}`,
      ...(fromApp && seen.path !== undefined ? { appPath: seen.path } : {}),
    };
  }

  /** An SVID for a workload's service account, signed by the mesh CA, as its sidecar would hold it. */
  async function svidOf(w: TestWorkload): Promise<RawTls> {
    let t = svids.get(w.name);
    if (!t) {
      const keys = generateKeyPair('ec-p256');
      const id = `spiffe://${principalOf(w)}`;
      const svid = unwrap(mesh.mp.ca.signSvid({ spiffeId: mustSpiffeId(id), publicKey: keys.publicKey }));
      t = {
        certPem: svid.chainPem.join(''),
        keyPem: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        caPem: mesh.mp.ca.trustBundle().pem,
        serverId: `spiffe://${principalOf(target)}`,
      };
      svids.set(w.name, t);
    }
    return t;
  }

  async function viaEnvoy(row: Row): Promise<EnvoyOutcome> {
    if (row.proto === 'tcp') {
      const w = clients[row.from as keyof typeof clients];
      const r = await tcpProbe({ host: w.address, port: DB_PORT, payload: `hello from ${w.name}` });
      return { verdict: r === 'echoed' ? 'allow' : 'deny', status: 0, by: r === 'echoed' ? 'db echo' : 'connection closed' };
    }
    if (row.from === 'plain') {
      try {
        const res = await rawHttp({
          host: target.address,
          port: HTTP_PORT,
          localAddress: PLAIN_ADDRESS,
          target: row.target ?? '/',
          headers: [['Host', TARGET_HOST]],
        });
        return { verdict: res.status === 200 ? 'allow' : 'deny', status: res.status, by: 'target sidecar (plaintext)' };
      } catch (e) {
        if (!closedWithoutAnswer(e)) throw e;
        return { verdict: 'deny', status: 0, by: 'connection closed' };
      }
    }
    return sendHttp(clients[row.from], row);
  }

  function cliArgs(row: Row): string[] {
    const tcp = row.proto === 'tcp';
    const args = ['--destination', tcp ? 'agree/db' : 'agree/target', '--port', String(tcp ? DB_PORT : HTTP_PORT)];
    if (row.from === 'plain') args.push('--source-ip', PLAIN_ADDRESS);
    else args.push('--source-principal', principalOf(clients[row.from]), '--source-ip', clients[row.from].address);
    if (tcp) return args;
    let path = row.target ?? '/';
    if (row.jwt && row.jwtIn === 'param') path += `${path.includes('?') ? '&' : '?'}access_token=${tokens[row.jwt]}`;
    args.push('--method', row.method ?? 'GET', `--path=${path}`, '--host', row.host ?? TARGET_HOST);
    for (const [k, v] of row.headers ?? []) args.push('--header', `${k}=${v}`);
    if (row.jwt) args.push('--jwt', tokens[row.jwt]);
    return args;
  }

  it(`${ROWS.length} requests: identical verdicts, and each as Istio's semantics say`, async () => {
    assert.ok(ROWS.length >= 40);
    const envoy: EnvoyOutcome[] = [];
    for (const row of ROWS)
      envoy.push(await viaEnvoy(row).catch((e: Error) => ({ verdict: 'deny' as const, status: -1, by: `error: ${e.message}` })));
    const cli: CliVerdict[] = await mapLimit(ROWS, 3, (row) => authzCheck(mesh.configDir, cliArgs(row)));

    const problems: string[] = [];
    const lines: string[] = [];
    ROWS.forEach((row, i) => {
      const e = envoy[i]!;
      const c = cli[i]!;
      const why: string[] = [];
      if (e.status === -1) why.push('no verdict from Envoy');
      if (e.verdict !== c.verdict) why.push('verdicts differ');
      // For denied HTTP requests the CLI names the status the caller sees (400 path refused, 401 token, 403 RBAC).
      if (row.proto !== 'tcp' && e.verdict === 'deny' && c.verdict === 'deny' && e.status !== c.status) why.push('statuses differ');
      if (e.verdict !== row.expect) why.push(`expected ${row.expect}`);
      if (row.status !== undefined && e.status !== row.status) why.push(`expected status ${row.status}`);
      if (row.proto !== 'tcp' && row.from !== 'plain' && e.by.startsWith('client sidecar') !== (row.clientRefuses === true))
        why.push(row.clientRefuses ? 'the client sidecar was expected to refuse it' : 'answered by the client sidecar');
      // What RBAC matched is what the app gets: the CLI's normalized path is the path the app received.
      const normalized = /^ {2}normalized path: (.*)$/m.exec(c.output)?.[1];
      if (e.appPath !== undefined && e.appPath.split('?')[0] !== normalized) why.push(`app got ${e.appPath}, cli matched ${normalized}`);
      const req =
        row.proto === 'tcp'
          ? `tcp → db:${DB_PORT}`
          : `${row.via === 'direct' ? '[mTLS direct] ' : ''}${row.method ?? 'GET'} ${row.target ?? '/'}${row.jwtIn === 'param' ? '?access_token=…' : ''}` +
            `${row.host ? ` host=${row.host}` : ''}${(row.headers ?? []).map(([k, v]) => ` ${k}:${v}`).join('')}${row.jwt ? ` jwt=${row.jwt}` : ''}`;
      lines.push(
        [
          String(i + 1).padStart(2),
          row.from.padEnd(6),
          req.padEnd(62),
          `${e.verdict} ${e.status || '-'}`.padEnd(9),
          `${c.verdict} ${c.status || '-'}`.padEnd(9),
          why.length === 0 ? 'ok' : `MISMATCH: ${why.join(', ')}`,
          `  (${row.note}; envoy: ${e.by})`,
        ].join(' '),
      );
      if (why.length > 0) problems.push(`row ${i + 1} ${req}: ${why.join(', ')}\n${c.output}`);
    });
    console.log(
      ['', ` #  from   ${'request'.padEnd(62)} envoy     cli`, ...lines, `${ROWS.length - problems.length}/${ROWS.length} agree`].join(
        '\n',
      ),
    );
    assert.deepEqual(problems, []);
  });
});

function example(name: string): string {
  return readFileSync(fileURLToPath(new URL(`../../examples/policy/${name}`, import.meta.url)), 'utf8');
}

/** The RequestAuthentication of target, with the test issuer's fresh public key inline. */
function requestAuthentication(iss: TestIssuer): string {
  return [
    'apiVersion: security.istio.io/v1',
    'kind: RequestAuthentication',
    'metadata:',
    '  name: target-jwt',
    '  namespace: agree',
    'spec:',
    '  selector:',
    '    matchLabels:',
    '      app: target',
    '  jwtRules:',
    `    - issuer: ${iss.issuer}`,
    '      audiences: [target]',
    `      jwks: '${iss.jwks}'`,
    '',
  ].join('\n');
}
