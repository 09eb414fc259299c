// One server, alone in a fresh process (run with --expose-gc), for the memory bench:
// `xds` is meshpilot's snapshot cache and xDS server, `echo` the bare grpc-js floor.
// Both sides get the same fresh process and the same steps, so their heap and RSS
// deltas compare; the clients live in the fleet process.
import { TypeUrl } from '../../src/proto/index.js';
import { unwrap } from '../../src/lib/index.js';
import { serveParent } from './child.js';
import { startEchoServer, type EchoServer } from './echo-server.js';
import { MeshView, messageSizes, startControlPlane, type BenchControlPlane } from './mesh.js';
import { settledMemory, waitFor, type Memory } from './measure.js';

/** What the bench asks a memory server. */
export type MemoryCommand =
  | { readonly cmd: 'start' }
  /** xds: publish the view for nodes `${prefix}0..count-1` and expect each to ACK it. */
  | { readonly cmd: 'prepare'; readonly prefix: string; readonly count: number }
  /** Waits until `count` streams are served: ACKed (xds), or said hello, got one response-size message and answered (echo). */
  | { readonly cmd: 'settle'; readonly count: number }
  /** Waits until every stream has closed and forgets their nodes. */
  | { readonly cmd: 'drain' }
  | { readonly cmd: 'memory' };

/** A memory server's answer. */
export interface MemoryReply {
  readonly address?: string;
  readonly sizes?: { readonly response: number; readonly ack: number };
  readonly memory?: Memory;
}

const TIMEOUT_MS = 30_000;
const kind = process.argv[2];
if (kind !== 'xds' && kind !== 'echo') throw new Error(`usage: memory-server.js xds|echo (got ${kind})`);
const view = new MeshView();
const sizes = messageSizes(view.snapshot);
let xds: BenchControlPlane | undefined;
let echo: EchoServer | undefined;
let nodes: string[] = [];
let acks: Promise<void> | undefined;

serveParent<MemoryCommand, MemoryReply>(
  async (m) => {
    switch (m.cmd) {
      case 'start':
        if (kind === 'xds') xds = await startControlPlane();
        else echo = await startEchoServer();
        return { address: (xds ?? echo)!.address, sizes };
      case 'prepare':
        nodes = Array.from({ length: m.count }, (_, i) => `${m.prefix}${i}`);
        if (xds) {
          for (const n of nodes) unwrap(xds.cache.set(n, view.snapshot));
          acks = xds.expectAcks(view.snapshot.typeVersion(TypeUrl.Cluster), m.count, TIMEOUT_MS);
        }
        return {};
      case 'settle':
        if (xds) await acks;
        if (echo) {
          const e = echo;
          await waitFor(() => e.ready() === m.count, 'echo streams to say hello', TIMEOUT_MS);
          await e.broadcast(Buffer.alloc(sizes.response, 0x5a), TIMEOUT_MS);
        }
        return {};
      case 'drain':
        if (xds) {
          const x = xds;
          await waitFor(() => x.xds.connected().length === 0, 'xds streams to close', TIMEOUT_MS);
          for (const n of nodes) x.cache.delete(n);
        }
        if (echo) await echo.closeStreams();
        nodes = [];
        acks = undefined;
        return {};
      case 'memory':
        return { memory: await settledMemory() };
    }
  },
  async () => {
    await xds?.stop();
    await echo?.stop();
  },
);
