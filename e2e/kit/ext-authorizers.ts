// Small external authorizers for CUSTOM policy tests, on loopback: one speaks Envoy's HTTP
// ext_authz protocol (the check is the original request, answered 200 or 403), the other the gRPC
// envoy.service.auth.v3.Authorization/Check. Both allow when the header `x-ext-authz` is `allow`.
import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { ExtAuthzCheckResponse, ExtAuthzGrpcService, type ExtAuthzCheckRequest } from '../../src/proto/index.js';

/** What an authorizer was asked: path and the x-ext-authz header of each check. */
export interface AuthorizerCheck {
  readonly path: string;
  readonly verdict: string | undefined;
}

/** A running test authorizer. */
export interface TestAuthorizer {
  readonly port: number;
  readonly checks: readonly AuthorizerCheck[];
  close(): Promise<void>;
}

/** An HTTP authorizer: Envoy sends it the request's method and path (after pathPrefix) and the allowed headers. */
export async function startHttpAuthorizer(host: string, port: number): Promise<TestAuthorizer> {
  const checks: AuthorizerCheck[] = [];
  const server = http.createServer((req, res) => {
    const verdict = req.headers['x-ext-authz'] as string | undefined;
    checks.push({ path: req.url ?? '', verdict });
    req.resume();
    if (verdict === 'allow') {
      res.writeHead(200, { 'x-ext-authz-check-result': 'allowed' });
      res.end();
    } else {
      res.writeHead(403, { 'x-ext-authz-check-result': 'denied', 'content-type': 'text/plain' });
      res.end('denied by the http authorizer');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port,
    checks,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A gRPC authorizer (envoy.service.auth.v3): OK when x-ext-authz is allow, else PERMISSION_DENIED with a 403. */
export async function startGrpcAuthorizer(host: string, port: number): Promise<TestAuthorizer> {
  const checks: AuthorizerCheck[] = [];
  const server = new grpc.Server();
  server.addService(ExtAuthzGrpcService, {
    check: (call: grpc.ServerUnaryCall<ExtAuthzCheckRequest, ExtAuthzCheckResponse>, cb: grpc.sendUnaryData<ExtAuthzCheckResponse>) => {
      const h = call.request.attributes?.request?.http;
      const verdict = h?.headers['x-ext-authz'];
      checks.push({ path: h?.path ?? '', verdict });
      cb(
        null,
        verdict === 'allow'
          ? ExtAuthzCheckResponse.fromPartial({ status: { code: 0 } })
          : ExtAuthzCheckResponse.fromPartial({
              status: { code: grpc.status.PERMISSION_DENIED },
              deniedResponse: { status: { code: 403 }, body: 'denied by the grpc authorizer' },
            }),
      );
    },
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())),
  );
  return {
    port,
    checks,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
