// A bounded load driver: N concurrent clients sending requests through a sidecar for a
// fixed time (and at most a fixed count), counting every success and every failure
// with its reason. Loopback only.
import { httpRequest } from '../harness/index.js';

/** What a load run counted. */
export interface LoadCounts {
  readonly sent: number;
  readonly ok: number;
  readonly failed: number;
  /** Failure reason → count (`status 503`, `ECONNRESET`, ...). */
  readonly failures: Readonly<Record<string, number>>;
  readonly elapsedMs: number;
}

/** A load run in progress. */
export interface LoadRun {
  /** Current counts (the run goes on). */
  counts(): LoadCounts;
  /** Stops sending, waits for requests in flight, returns the final counts. */
  stop(): Promise<LoadCounts>;
  /** Resolves when the run has ended by itself (time or count reached). */
  readonly done: Promise<LoadCounts>;
}

/** Starts `concurrency` clients sending GET `path` to host:port with the Host header `hostHeader`. */
export function startLoad(o: {
  host: string;
  port: number;
  hostHeader: string;
  path?: string;
  concurrency?: number;
  maxDurationMs: number;
  maxRequests?: number;
  /** Pause between a client's requests; default 5 ms. */
  pauseMs?: number;
  /** Called with each successful response, e.g. to record which certificate was seen. */
  onResponse?: (res: { status: number; json?: unknown }) => void;
}): LoadRun {
  const started = Date.now();
  const deadline = started + o.maxDurationMs;
  const maxRequests = o.maxRequests ?? 1_000_000;
  let sent = 0;
  let okCount = 0;
  let stopped = false;
  const failures: Record<string, number> = {};
  const fail = (reason: string) => {
    failures[reason] = (failures[reason] ?? 0) + 1;
  };
  const counts = (): LoadCounts => ({
    sent,
    ok: okCount,
    failed: sent - okCount,
    failures: { ...failures },
    elapsedMs: Date.now() - started,
  });

  async function client(): Promise<void> {
    while (!stopped && Date.now() < deadline && sent < maxRequests) {
      sent++;
      try {
        const res = await httpRequest({
          host: o.host,
          port: o.port,
          path: o.path ?? '/load',
          headers: { host: o.hostHeader },
          timeoutMs: 5_000,
        });
        if (res.status === 200) {
          okCount++;
          o.onResponse?.(res);
        } else fail(`status ${res.status}`);
      } catch (e) {
        fail((e as NodeJS.ErrnoException).code ?? (e as Error).message);
      }
      await new Promise((r) => setTimeout(r, o.pauseMs ?? 5));
    }
  }

  const done = Promise.all(Array.from({ length: o.concurrency ?? 4 }, client)).then(counts);
  return {
    counts,
    done,
    async stop() {
      stopped = true;
      return done;
    },
  };
}

/** Formats counts for a test's output. */
export function formatCounts(name: string, c: LoadCounts): string {
  const reasons = Object.entries(c.failures)
    .map(([r, n]) => `${r}: ${n}`)
    .join(', ');
  return `${name}: ${c.sent} sent, ${c.ok} ok, ${c.failed} failed${reasons ? ` (${reasons})` : ''} in ${c.elapsedMs} ms`;
}
