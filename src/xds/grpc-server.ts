import * as grpc from '@grpc/grpc-js';

/** Receive limit for one xDS request: real requests are a few KiB; 4 MiB is grpc-js's default, stated here on purpose. */
export const MAX_RECEIVE_BYTES = 4 * 1024 * 1024;

/** Creates a gRPC server with meshpilot's limits: bounded messages, keepalive to notice dead proxies. */
export function createGrpcServer(): grpc.Server {
  return new grpc.Server({
    'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
  });
}

/** Binds a server to host:port (0 picks a free port) and resolves with the bound port. */
export function listen(server: grpc.Server, host: string, port: number, creds: grpc.ServerCredentials): Promise<number> {
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise((resolve, reject) => server.bindAsync(address, creds, (e, bound) => (e ? reject(e) : resolve(bound))));
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
