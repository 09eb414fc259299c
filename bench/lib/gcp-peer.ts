// The parent's handle on the go-control-plane peer (bench/peers/gcp, built by `make bench`
// to dist/bench/gcp-peer): spawns it on a resource-state file, steers it over stdin and
// reads its JSON lines from stdout.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Where `make bench` puts the peer binary. */
export const GCP_PEER_BIN = fileURLToPath(new URL('../gcp-peer', import.meta.url));

/** A running go-control-plane peer. */
export interface GcpPeer {
  readonly port: number;
  readonly pid: number;
  /** Publishes resource state `i`; resolves with the epoch ms just before SetSnapshot. */
  set(i: number): Promise<number>;
  /** Heap in use and RSS after a full collection, bytes. */
  memory(): Promise<{ heapAlloc: number; rss: number }>;
  stop(): Promise<void>;
}

/** Why the peer cannot run here, or undefined when its binary exists. */
export function gcpPeerMissing(): string | undefined {
  return existsSync(GCP_PEER_BIN)
    ? undefined
    : `${GCP_PEER_BIN} not built: 'make bench' builds it with Go (/usr/local/go/bin/go or go on PATH), which was not found or failed`;
}

/** Starts the peer over TLS with the given certificate and states; resolves once it listens. */
export async function startGcpPeer(o: { statesFile: string; certFile: string; keyFile: string; timeoutMs?: number }): Promise<GcpPeer> {
  const child: ChildProcess = spawn(GCP_PEER_BIN, ['-resources', o.statesFile, '-cert', o.certFile, '-key', o.keyFile], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const waiting: { event: string; resolve: (v: Record<string, number>) => void; reject: (e: Error) => void }[] = [];
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      exited = true;
      for (const w of waiting.splice(0)) w.reject(new Error(`gcp-peer exited (code ${code})`));
      resolve();
    }),
  );
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const msg = JSON.parse(line) as { event: string } & Record<string, number>;
    const i = waiting.findIndex((w) => w.event === msg.event);
    if (i >= 0) waiting.splice(i, 1)[0]!.resolve(msg);
  });
  const next = (event: string, timeoutMs = o.timeoutMs ?? 30_000) =>
    new Promise<Record<string, number>>((resolve, reject) => {
      if (exited) return reject(new Error('gcp-peer has exited'));
      const timer = setTimeout(() => reject(new Error(`gcp-peer: no ${event} after ${timeoutMs} ms`)), timeoutMs);
      waiting.push({
        event,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  const stop = async () => {
    if (!exited) child.stdin!.end();
    const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exit;
    clearTimeout(killer);
  };
  try {
    const { port } = await next('listening');
    return {
      port: port!,
      pid: child.pid!,
      async set(i) {
        const reply = next('set');
        child.stdin!.write(`set ${i}\n`);
        return (await reply).atMs!;
      },
      async memory() {
        const reply = next('mem');
        child.stdin!.write('mem\n');
        const m = await reply;
        return { heapAlloc: m.heapAlloc!, rss: m.rss! };
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
