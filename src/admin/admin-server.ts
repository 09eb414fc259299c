// The admin port (15014 by default, loopback only): health, Prometheus metrics, debug
// views, and the CA operations an operator runs against a live control plane
// (`meshpilot ca revoke` and `rotate-root` come here when a server owns the state dir).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Result } from '../lib/index.js';
import type { Logger, Metrics } from '../observability/index.js';

/** What the admin port can do: the control plane supplies these. */
export interface AdminActions {
  connections(): unknown;
  config(nodeId: string): unknown;
  caStatus(): unknown;
  revoke(serialHex: string): Result<unknown, string> | Promise<Result<unknown, string>>;
  /** Signs an SVID for a public key the caller made (the private key never comes here). */
  sign(req: { spiffeId: string; publicKeyPem: string; ttlMs?: number }): Result<unknown, string>;
  rotateRoot(phase: 'prepare' | 'activate' | 'retire', force: boolean): Result<unknown, string> | Promise<Result<unknown, string>>;
  /** Waits until every connected proxy ACKed the CRL (and the holder its fresh SVID); resolves with the proof. */
  awaitRevocation?(serialHex: string, holder: string | undefined, timeoutMs: number): Promise<unknown>;
  /** Every connected proxy's per-type xDS state, or one proxy's (undefined when it is not connected). */
  proxyStatus(proxy?: string): unknown;
  /** Proof of mTLS per client and service port (`meshpilot mtls report`); optional so other wirings need not provide it. */
  mtlsReport?(filter: { from?: string; to?: string }): unknown;
  /** Waits until every connected proxy ACKed the trust bundle (`bundle`) or its SVID under the new root (`svids`): the gates of a gated root rotation. */
  awaitRootRollout?(stage: 'bundle' | 'svids', timeoutMs: number): Promise<unknown>;
  /** Replicas on a shared CA store: records a gated root rotation for the leader to drive (refused while one runs). */
  startRotation?(o: { forceRetire: boolean; gateTimeoutMs: number }): Promise<Result<unknown, string>>;
  /** The recorded gated rotation and every replica's report on its gate. */
  rotationView?(): Promise<Result<unknown, string>>;
}

/** The longest a revocation may wait for the mesh's acknowledgement (the CLI's --timeout). */
const MAX_WAIT_MS = 300_000;

// A change refused because the shared CA store (etcd) does not answer is worth retrying, not a bad request.
const unavailableStatus = (error: string): number => (/^ca store unreachable/.test(error) ? 503 : 400);

/** A running admin server. */
export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

/** What the admin server asks of a connection guard (src/net's fits). */
export interface AdminConnectionGuard {
  admit(socket: Socket): boolean;
  requested(address: { remoteAddress?: string; remotePort?: number }): void;
  acceptFailed(e: Error): void;
}

/** Starts the admin server; everything but /healthz and /metrics needs `Authorization: Bearer <token>`. */
export async function startAdminServer(deps: {
  host: string;
  port: number;
  token: string;
  actions: AdminActions;
  metrics: Metrics;
  log: Logger;
  /** Extra routes tried first (the mesh page); they check access themselves. */
  page?: { handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> };
  /** Admission of connections (caps, first-request deadline); every connection is served without one. */
  guard?: AdminConnectionGuard;
}): Promise<AdminServer> {
  const expected = Buffer.from(`Bearer ${deps.token}`);
  const authorized = (req: IncomingMessage) => {
    const got = Buffer.from(String(req.headers.authorization ?? ''));
    return got.length === expected.length && timingSafeEqual(got, expected);
  };
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body, null, 2) + '\n');
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const route = `${req.method} ${url.pathname}`;
    if (route === 'GET /healthz') return send(res, 200, { ok: true });
    if (deps.page && (await deps.page.handle(req, res, url))) return;
    if (route === 'GET /metrics') {
      res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
      res.end(await deps.metrics.registry.metrics());
      return;
    }
    if (!authorized(req)) {
      deps.log.warn('admin request refused', { route, reason: 'missing or wrong admin token' });
      return send(res, 401, { error: 'unauthorized' });
    }
    switch (route) {
      case 'GET /debug/connections':
        return send(res, 200, deps.actions.connections());
      case 'GET /debug/config':
        return send(res, 200, deps.actions.config(url.searchParams.get('node') ?? ''));
      case 'GET /debug/proxy-status': {
        const proxy = url.searchParams.get('proxy');
        const body = deps.actions.proxyStatus(proxy ?? undefined);
        return body === undefined ? send(res, 404, { error: `no connected proxy ${proxy}` }) : send(res, 200, body);
      }
      case 'GET /debug/mtls-report': {
        if (!deps.actions.mtlsReport) return send(res, 404, { error: 'mtls report not available' });
        const from = url.searchParams.get('from');
        const to = url.searchParams.get('to');
        return send(res, 200, deps.actions.mtlsReport({ ...(from ? { from } : {}), ...(to ? { to } : {}) }));
      }
      case 'GET /ca/status':
        return send(res, 200, deps.actions.caStatus());
      case 'POST /ca/revoke': {
        const serial = url.searchParams.get('serial') ?? '';
        const waitMs = url.searchParams.has('waitMs') ? Number(url.searchParams.get('waitMs')) : undefined;
        if (waitMs !== undefined && !(Number.isInteger(waitMs) && waitMs >= 0 && waitMs <= MAX_WAIT_MS))
          return send(res, 400, { error: `waitMs must be an integer from 0 to ${MAX_WAIT_MS}` });
        const r = await deps.actions.revoke(serial);
        deps.log.info('admin revoke', { serial, ok: r.ok, ...(r.ok ? {} : { cause: r.error }) });
        if (!r.ok) return send(res, unavailableStatus(r.error), { error: r.error });
        if (waitMs === undefined || !deps.actions.awaitRevocation) return send(res, 200, r.value);
        const reissued = (r.value as { reissued?: unknown }).reissued;
        const proof = await deps.actions.awaitRevocation(serial, typeof reissued === 'string' ? reissued : undefined, waitMs);
        deps.log.info('admin revoke acknowledged', { serial, proof });
        return send(res, 200, { ...(r.value as object), propagation: proof });
      }
      case 'POST /ca/sign': {
        const body = await readJson(req, 64 * 1024);
        if (!body.ok) return send(res, 400, { error: body.error });
        const b = body.value as { spiffeId?: unknown; publicKeyPem?: unknown; ttlMs?: unknown };
        if (
          typeof b.spiffeId !== 'string' ||
          typeof b.publicKeyPem !== 'string' ||
          (b.ttlMs !== undefined && typeof b.ttlMs !== 'number')
        ) {
          return send(res, 400, { error: 'body must be {"spiffeId": string, "publicKeyPem": string, "ttlMs"?: number}' });
        }
        const r = deps.actions.sign({ spiffeId: b.spiffeId, publicKeyPem: b.publicKeyPem, ttlMs: b.ttlMs as number | undefined });
        deps.log.info('admin sign', { spiffeId: b.spiffeId, ok: r.ok, ...(r.ok ? {} : { cause: r.error }) });
        return r.ok ? send(res, 200, r.value) : send(res, 400, { error: r.error });
      }
      case 'GET /ca/await-rollout': {
        const stage = url.searchParams.get('stage');
        const waitMs = Number(url.searchParams.get('waitMs') ?? '0');
        if (stage !== 'bundle' && stage !== 'svids') return send(res, 400, { error: 'stage must be bundle or svids' });
        if (!(Number.isInteger(waitMs) && waitMs >= 0 && waitMs <= MAX_WAIT_MS))
          return send(res, 400, { error: `waitMs must be an integer from 0 to ${MAX_WAIT_MS}` });
        if (!deps.actions.awaitRootRollout) return send(res, 404, { error: 'rollout proof not available' });
        return send(res, 200, await deps.actions.awaitRootRollout(stage, waitMs));
      }
      case 'POST /ca/rotation': {
        if (!deps.actions.startRotation) return send(res, 404, { error: 'no shared rotation: this control plane keeps its CA alone' });
        const gateTimeoutMs = Number(url.searchParams.get('gateTimeoutMs') ?? '60000');
        if (!(Number.isInteger(gateTimeoutMs) && gateTimeoutMs > 0 && gateTimeoutMs <= MAX_WAIT_MS))
          return send(res, 400, { error: `gateTimeoutMs must be an integer from 1 to ${MAX_WAIT_MS}` });
        const r = await deps.actions.startRotation({ forceRetire: url.searchParams.get('forceRetire') === 'true', gateTimeoutMs });
        deps.log.info('admin rotation start', { ok: r.ok, ...(r.ok ? {} : { cause: r.error }) });
        return r.ok ? send(res, 200, r.value) : send(res, /^ca store unreachable/.test(r.error) ? 503 : 409, { error: r.error });
      }
      case 'GET /ca/rotation': {
        if (!deps.actions.rotationView) return send(res, 404, { error: 'no shared rotation: this control plane keeps its CA alone' });
        const r = await deps.actions.rotationView();
        return r.ok ? send(res, 200, r.value) : send(res, 503, { error: r.error });
      }
      case 'POST /ca/rotate-root': {
        const phase = url.searchParams.get('phase');
        if (phase !== 'prepare' && phase !== 'activate' && phase !== 'retire')
          return send(res, 400, { error: 'phase must be prepare, activate or retire' });
        const r = await deps.actions.rotateRoot(phase, url.searchParams.get('force') === 'true');
        deps.log.info('admin rotate-root', { phase, ok: r.ok, ...(r.ok ? {} : { cause: r.error }) });
        return r.ok ? send(res, 200, r.value) : send(res, unavailableStatus(r.error), { error: r.error });
      }
      default:
        return send(res, 404, { error: `no route ${route}` });
    }
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      deps.log.error('admin request failed', { url: req.url, cause: String(e) });
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
    });
  });
  const guard = deps.guard;
  if (guard) {
    // Before the HTTP parser: a refused connection is reset at once; a request lifts its deadline.
    server.prependListener('connection', (socket: Socket) => void guard.admit(socket));
    server.prependListener('request', (req: IncomingMessage) => guard.requested(req.socket));
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(deps.port, deps.host, () => resolve());
  });
  // accept(2) failing (EMFILE) must not be an unhandled 'error' that ends the process.
  server.on('error', (e) => guard?.acceptFailed(e) ?? deps.log.error('admin accept failed', { cause: e.message }));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : deps.port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Reads a JSON request body of at most `limit` bytes. */
async function readJson(req: IncomingMessage, limit: number): Promise<Result<unknown, string>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) return { ok: false, error: `body larger than ${limit} bytes` };
    chunks.push(c as Buffer);
  }
  try {
    return { ok: true, value: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
  } catch (e) {
    return { ok: false, error: `body is not JSON: ${(e as Error).message}` };
  }
}
