import { createServer, type Server as NetServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';

/** Receive limit for one xDS request: real requests are a few KiB; 4 MiB is grpc-js's default, stated here on purpose. */
export const MAX_RECEIVE_BYTES = 4 * 1024 * 1024;

/** The address pair of the connection a call arrived on. */
export interface CallConnection {
  readonly remoteAddress?: string;
  readonly remotePort?: number;
}

/** What a gRPC server reports about its calls. */
export interface GrpcServerOptions {
  /** Every call, as it starts, with its connection (the connection guard lifts its first-request deadline). */
  onCall?(connection: CallConnection): void;
}

/** Creates a gRPC server with meshpilot's limits: bounded messages, keepalive to notice dead proxies. */
export function createGrpcServer(o: GrpcServerOptions = {}): grpc.Server {
  const onCall = o.onCall;
  return new grpc.Server({
    'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    ...(onCall
      ? {
          interceptors: [
            (_method: grpc.ServerMethodDefinition<unknown, unknown>, call: grpc.ServerInterceptingCallInterface) => {
              onCall(call.getConnectionInfo());
              return new grpc.ServerInterceptingCall(call);
            },
          ],
        }
      : {}),
  });
}

/** Binds a server to host:port (0 picks a free port) and resolves with the bound port. */
export function listen(server: grpc.Server, host: string, port: number, creds: grpc.ServerCredentials): Promise<number> {
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise((resolve, reject) => server.bindAsync(address, creds, (e, bound) => (e ? reject(e) : resolve(bound))));
}

/** A listening socket whose connections go to a gRPC server after an admission check. */
export interface GuardedListener {
  readonly port: number;
  /** Stops accepting and destroys the connections still open (call after the gRPC server's shutdown, which closes its streams gracefully). */
  close(): Promise<void>;
}

/**
 * Listens on host:port with a plain TCP server of our own and hands each connection that `admit`
 * accepts to the gRPC server (grpc-js's connection injector), so that caps and deadlines apply
 * before TLS and HTTP/2 spend anything on it. `onAcceptError` hears accept(2) failures (EMFILE),
 * which would otherwise be an unhandled 'error'.
 */
export function listenGuarded(
  server: grpc.Server,
  host: string,
  port: number,
  creds: grpc.ServerCredentials,
  o: { admit(socket: Socket): boolean; onAcceptError(e: Error): void },
): Promise<GuardedListener> {
  const injector = server.createConnectionInjector(creds);
  const sockets = new Set<Socket>();
  const tcp: NetServer = createServer((socket) => {
    if (!o.admit(socket)) return;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    injector.injectConnection(socket);
  });
  return new Promise((resolve, reject) => {
    const onListenError = (e: Error) => {
      injector.destroy();
      reject(e);
    };
    tcp.once('error', onListenError);
    tcp.listen(port, host, () => {
      tcp.off('error', onListenError);
      tcp.on('error', o.onAcceptError);
      const address = tcp.address();
      resolve({
        port: typeof address === 'object' && address ? address.port : port,
        close: () =>
          new Promise<void>((done) => {
            tcp.close(() => done());
            injector.destroy();
            for (const socket of sockets) socket.destroy();
          }),
      });
    });
  });
}

/** Stops accepting calls and waits for open ones to finish, forcing them after `graceMs`. */
export function shutdown(server: grpc.Server, graceMs = 2_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
