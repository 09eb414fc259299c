// The grpc-js floor: a bidi service with identity serializers that writes one
// pre-built Buffer to every open stream and waits for every client's reply. It does
// what the xDS server must do at the least (write N messages of a given size, read N
// small ones), so meshpilot's push time is read against it.
import * as grpc from '@grpc/grpc-js';
import { createGrpcServer, listen, shutdown } from '../../src/xds/index.js';
import { waitFor } from './measure.js';

/** The echo method's path; fleet clients call it. */
export const ECHO_PATH = '/meshpilot.bench.Echo/Chat';

/** A running floor server. */
export interface EchoServer {
  readonly address: string;
  /** Streams whose hello has arrived. */
  ready(): number;
  /** Writes `msg` (or each of several, in order) to every ready stream and resolves when each has replied to each, with the time the write loop took. */
  broadcast(msg: Buffer | readonly Buffer[], timeoutMs?: number): Promise<{ writeMs: number }>;
  /** Ends every stream and resolves when none is open. */
  closeStreams(): Promise<void>;
  stop(): Promise<void>;
}

type Call = grpc.ServerDuplexStream<Buffer, Buffer>;

/** Floor server options: TLS credentials (default plaintext), and messages written to each stream when its hello arrives. */
export interface EchoOptions {
  readonly credentials?: grpc.ServerCredentials;
  readonly greeting?: readonly Buffer[];
}

/** Starts the floor server on 127.0.0.1 with a free port (same gRPC server options as the xDS server). */
export async function startEchoServer(opts: EchoOptions = {}): Promise<EchoServer> {
  const server = createGrpcServer();
  const open = new Set<Call>();
  const ready = new Set<Call>();
  let replies = 0;
  let want = 0;
  let done: (() => void) | undefined;
  server.addService(
    {
      chat: {
        path: ECHO_PATH,
        requestStream: true,
        responseStream: true,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    {
      chat: (call: Call) => {
        open.add(call);
        const forget = () => {
          open.delete(call);
          ready.delete(call);
        };
        call.on('data', () => {
          if (!ready.has(call)) {
            ready.add(call);
            for (const m of opts.greeting ?? []) call.write(m);
            return;
          }
          if (++replies === want) done?.();
        });
        call.on('end', () => {
          forget();
          call.end();
        });
        call.on('cancelled', forget);
        call.on('error', forget);
      },
    },
  );
  const port = await listen(server, '127.0.0.1', 0, opts.credentials ?? grpc.ServerCredentials.createInsecure());
  return {
    address: `127.0.0.1:${port}`,
    ready: () => ready.size,
    broadcast(msg, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const msgs = Buffer.isBuffer(msg) ? [msg] : msg;
        replies = 0;
        want = ready.size * msgs.length;
        const timer = setTimeout(() => reject(new Error(`echo: ${replies}/${want} replies after ${timeoutMs} ms`)), timeoutMs);
        let writeMs = 0;
        done = () => {
          clearTimeout(timer);
          done = undefined;
          resolve({ writeMs });
        };
        const t0 = performance.now();
        for (const call of ready) for (const m of msgs) call.write(m);
        writeMs = performance.now() - t0;
      });
    },
    async closeStreams() {
      await waitFor(() => open.size === 0, 'echo streams to close');
    },
    async stop() {
      for (const call of open) call.end();
      await shutdown(server, 1_000);
    },
  };
}
