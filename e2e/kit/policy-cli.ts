// Runs the real `meshpilot authz check` CLI (dist/src/cli/bin.js) as a child process and parses
// its answer: the first line is ALLOW or DENY, the exit code 0 or 3, and `status:` the HTTP status
// the caller would see (or `connection refused`).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../src/cli/bin.js', import.meta.url));

/** What `authz check` said. */
export interface CliVerdict {
  readonly verdict: 'allow' | 'deny';
  /** 200, 400, 401, 403, or 0 for a refused connection. */
  readonly status: number;
  /** The whole output, for the table and failure messages. */
  readonly output: string;
}

/** Runs `meshpilot authz check --config <configDir> ...args` and parses the verdict; rejects when it cannot answer (exit 2). */
export function authzCheck(configDir: string, args: readonly string[]): Promise<CliVerdict> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [BIN, 'authz', 'check', '--config', configDir, ...args],
      { timeout: 20_000, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        const first = stdout.split('\n')[0];
        if ((code !== 0 && code !== 3) || (first !== 'ALLOW' && first !== 'DENY')) {
          reject(new Error(`authz check ${args.join(' ')} exited ${code}: ${stdout}${stderr}`));
          return;
        }
        const verdict = first === 'ALLOW' ? 'allow' : 'deny';
        if ((verdict === 'allow') !== (code === 0)) {
          reject(new Error(`authz check said ${first} but exited ${code}`));
          return;
        }
        const s = /^ {2}status: (.+)$/m.exec(stdout)?.[1] ?? '';
        resolve({ verdict, status: s === 'connection refused' ? 0 : Number(s), output: stdout });
      },
    );
  });
}

/** Runs `fn` over `items` with at most `limit` running at once, keeping the order of results. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
