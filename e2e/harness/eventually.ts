/** Options for {@link eventually}. */
export interface EventuallyOptions {
  /** Total time budget; default 10 s. */
  timeoutMs?: number;
  /** Pause between attempts; default 100 ms. */
  intervalMs?: number;
  /** What we are waiting for, quoted in the error. */
  description?: string;
}

/**
 * Retries `fn` until it resolves without throwing and without returning `false`, and returns its value.
 * An attempt still pending at the deadline is abandoned, so the wait is bounded even if `fn` hangs.
 * On timeout it throws with the description and the last error (as `cause`).
 */
export async function eventually<T>(fn: () => T | Promise<T>, options: EventuallyOptions = {}): Promise<Exclude<T, false>> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 100;
  const description = options.description ?? 'condition';
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = undefined;
  let attempts = 0;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    attempts++;
    const outcome = await withDeadline(fn, remaining);
    if (outcome.kind === 'value') {
      if (outcome.value !== false) return outcome.value as Exclude<T, false>;
      lastError = new Error('returned false');
    } else if (outcome.kind === 'error') {
      lastError = outcome.error;
    } else {
      lastError ??= new Error('attempt still pending at the deadline');
      break;
    }
    const pause = Math.min(intervalMs, deadline - Date.now());
    if (pause <= 0) break;
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
  const reason = lastError instanceof Error ? lastError.message : String(lastError);
  throw new Error(`timed out after ${timeoutMs} ms (${attempts} attempts) waiting for ${description}: ${reason}`, { cause: lastError });
}

type Outcome<T> = { kind: 'value'; value: T } | { kind: 'error'; error: unknown } | { kind: 'timeout' };

async function withDeadline<T>(fn: () => T | Promise<T>, ms: number): Promise<Outcome<T>> {
  let timer: NodeJS.Timeout | undefined;
  const attempt = (async (): Promise<Outcome<T>> => {
    try {
      return { kind: 'value', value: await fn() };
    } catch (error) {
      return { kind: 'error', error };
    }
  })();
  const timeout = new Promise<Outcome<T>>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'timeout' }), ms);
  });
  try {
    return await Promise.race([attempt, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
