// The floor of the real-path benchmark, alone in a fresh process (run with --expose-gc):
// bare grpc-js bidi streams over TLS (lib/echo-server.ts with TLS credentials) that write,
// on each stream's hello, messages of the sizes a meshpilot proxy received at cold start,
// and broadcast the sizes of a change. It does what the xDS server must do at the least,
// over the same number of TLS connections, so meshpilot's times and memory read against it.
import * as grpc from '@grpc/grpc-js';
import { serveParent } from './child.js';
import { startEchoServer, type EchoServer } from './echo-server.js';
import { epochMs, settledMemory, type Memory } from './measure.js';

/** What the bench asks the floor server. */
export type FloorCommand =
  | { readonly cmd: 'start'; readonly certPem: string; readonly keyPem: string; readonly greetingSizes: readonly number[] }
  /** Writes messages of these sizes to every stream; answers once every stream replied to each. */
  | { readonly cmd: 'broadcast'; readonly sizes: readonly number[]; readonly timeoutMs: number }
  | { readonly cmd: 'memory' }
  | { readonly cmd: 'stop' };

/** The floor server's answer. */
export interface FloorReply {
  readonly address?: string;
  /** When the broadcast's write loop started, epoch ms. */
  readonly atMs?: number;
  readonly memory?: Memory;
}

const filler = (sizes: readonly number[]) => sizes.map((n) => Buffer.alloc(n, 0x5a));
let echo: EchoServer | undefined;

serveParent<FloorCommand, FloorReply>(
  async (m) => {
    switch (m.cmd) {
      case 'start': {
        const credentials = grpc.ServerCredentials.createSsl(null, [
          { cert_chain: Buffer.from(m.certPem), private_key: Buffer.from(m.keyPem) },
        ]);
        echo = await startEchoServer({ credentials, greeting: filler(m.greetingSizes) });
        return { address: echo.address };
      }
      case 'broadcast': {
        const msgs = filler(m.sizes);
        const atMs = epochMs();
        await echo!.broadcast(msgs, m.timeoutMs);
        return { atMs };
      }
      case 'memory':
        return { memory: await settledMemory() };
      case 'stop':
        await echo?.stop();
        echo = undefined;
        return {};
    }
  },
  async () => {
    await echo?.stop();
  },
);
