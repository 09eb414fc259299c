// Request/response over Node's IPC channel between a bench and a child process it
// forks. Only steering goes over it; nothing is timed across the channel.
import { fork } from 'node:child_process';

type Reply<R> =
  { readonly id: number; readonly ok: true; readonly value: R } | { readonly id: number; readonly ok: false; readonly error: string };

/** A forked child that answers commands. */
export interface Child<C, R> {
  /** Sends a command; resolves with the child's answer once it has carried it out. */
  send(cmd: C): Promise<R>;
  /** Disconnects and waits for the child to exit. */
  stop(): Promise<void>;
  /** Kills the child at once (SIGKILL) and waits for it to exit: pending commands reject. */
  kill(): Promise<void>;
}

/**
 * Forks `module` (a compiled .js file) with `args`; `execArgv` defaults to none, so no flag of this process leaks in.
 * With `sendTimeoutMs`, a command not answered in time rejects and the child is killed, so a hung child cannot hang the bench.
 */
export function forkChild<C extends object, R>(
  module: URL,
  opts: { args?: string[]; execArgv?: string[]; sendTimeoutMs?: number } = {},
): Child<C, R> {
  const child = fork(module, opts.args ?? [], { execArgv: opts.execArgv ?? [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const pending = new Map<number, { resolve: (r: R) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      exited = true;
      for (const p of pending.values()) p.reject(new Error(`${module.pathname} exited (code ${code})`));
      pending.clear();
      resolve();
    }),
  );
  child.on('message', (r: Reply<R>) => {
    const p = pending.get(r.id);
    if (!p) return;
    pending.delete(r.id);
    if (r.ok) p.resolve(r.value);
    else p.reject(new Error(r.error));
  });
  return {
    send(cmd) {
      if (exited) return Promise.reject(new Error(`${module.pathname} has exited`));
      const id = ++nextId;
      return new Promise((resolve, reject) => {
        const timer =
          opts.sendTimeoutMs === undefined
            ? undefined
            : setTimeout(() => {
                pending.delete(id);
                reject(new Error(`${module.pathname}: no answer to ${JSON.stringify(cmd).slice(0, 80)} after ${opts.sendTimeoutMs} ms`));
                child.kill('SIGKILL');
              }, opts.sendTimeoutMs);
        pending.set(id, {
          resolve: (r) => {
            clearTimeout(timer);
            resolve(r);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        child.send({ ...cmd, id });
      });
    },
    async kill() {
      if (!exited) child.kill('SIGKILL');
      await exit;
    },
    async stop() {
      if (!exited) child.disconnect();
      // A child that does not leave within 10 s of its parent going away is killed.
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(killer);
    },
  };
}

/** In a child: answers each command from the parent with `handle`'s result; `onExit` runs when the parent goes away. */
export function serveParent<C extends object, R>(handle: (cmd: C) => R | Promise<R>, onExit: () => void | Promise<void> = () => {}): void {
  process.on('message', (m: C & { id: number }) => {
    void (async () => {
      let reply: Reply<R>;
      try {
        reply = { id: m.id, ok: true, value: await handle(m) };
      } catch (e) {
        reply = { id: m.id, ok: false, error: (e as Error).stack ?? String(e) };
      }
      process.send!(reply);
    })();
  });
  process.on('disconnect', () => {
    void (async () => {
      await onExit();
      process.exit(0);
    })();
  });
}
