import { startEnvoy, type EnvoyProcess, type StartEnvoyOptions } from './envoy.js';

/** The part of a mocha test that {@link EnvoyPool.dumpLogsIfFailed} reads. */
export interface TestOutcome {
  state?: string;
  fullTitle?(): string;
}

/** Tracks the Envoys of one test file: dumps their logs when a test fails and stops them all at the end. */
export interface EnvoyPool {
  /** Starts an Envoy and tracks it. */
  start(options: StartEnvoyOptions): Promise<EnvoyProcess>;
  /** Tracks an Envoy started elsewhere and returns it. */
  add(envoy: EnvoyProcess): EnvoyProcess;
  /** The tracked Envoys, oldest first. */
  readonly envoys: readonly EnvoyProcess[];
  /** When `test` failed, writes the last `lines` (default 150) log lines of every tracked Envoy to stderr; then forgets the stopped ones. */
  dumpLogsIfFailed(test: TestOutcome | undefined, lines?: number): void;
  /** Stops every tracked Envoy (each one even if another fails) and forgets them. */
  stopAll(): Promise<void>;
}

/** Returns an empty {@link EnvoyPool}. */
export function envoyPool(): EnvoyPool {
  let envoys: EnvoyProcess[] = [];
  return {
    async start(options) {
      return this.add(await startEnvoy(options));
    },
    add(envoy) {
      if (!envoys.includes(envoy)) envoys.push(envoy);
      return envoy;
    },
    get envoys() {
      return envoys;
    },
    dumpLogsIfFailed(test, lines = 150) {
      if (test?.state === 'failed') {
        const title = test.fullTitle?.() ?? 'a test';
        for (const envoy of envoys) {
          const where = `pid ${envoy.pid}, admin ${envoy.adminHost}:${envoy.adminPort}, ${envoy.running ? 'running' : 'exited'}, dir ${envoy.dir}`;
          process.stderr.write(
            `\n----- "${title}" failed: last ${lines} log lines of envoy ${envoy.name} (${where}) -----\n${envoy.logs(lines)}\n----- end of envoy ${envoy.name} -----\n`,
          );
        }
      }
      envoys = envoys.filter((e) => e.running);
    },
    async stopAll() {
      const stopping = envoys;
      envoys = [];
      const results = await Promise.allSettled(stopping.map((e) => e.stop()));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    },
  };
}

/**
 * Registers mocha hooks for the calling test file: after each failed test, dump every tracked Envoy's log;
 * after all tests, stop them. Call at the top of a describe block (or file); returns the pool to start Envoys from.
 */
export function registerEnvoyCleanup(pool: EnvoyPool = envoyPool()): EnvoyPool {
  afterEach(function () {
    pool.dumpLogsIfFailed(this.currentTest);
  });
  after(() => pool.stopAll());
  return pool;
}
