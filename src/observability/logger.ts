import { pino } from 'pino';

/** Structured fields attached to a log line; messages stay lowercase and stable. */
export type LogFields = Readonly<Record<string, unknown>>;

/** The logger every module takes as a dependency. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

/** A JSON logger (pino) writing to stderr at the given level. */
export function createLogger(opts: { level?: string; name?: string } = {}): Logger {
  const base = pino(
    { level: opts.level ?? process.env.MESHPILOT_LOG_LEVEL ?? 'info', name: opts.name ?? 'meshpilot' },
    pino.destination(2),
  );
  return wrap(base);
}

function wrap(p: pino.Logger): Logger {
  return {
    debug: (msg, fields) => p.debug(fields ?? {}, msg),
    info: (msg, fields) => p.info(fields ?? {}, msg),
    warn: (msg, fields) => p.warn(fields ?? {}, msg),
    error: (msg, fields) => p.error(fields ?? {}, msg),
    child: (fields) => wrap(p.child(fields)),
  };
}

/** One recorded log line, for tests that assert what was logged. */
export interface RecordedLine {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly msg: string;
  readonly fields: LogFields;
}

/** A logger that keeps every line in memory: tests assert on `lines`. */
export function createRecordingLogger(bound: LogFields = {}, sink: RecordedLine[] = []): Logger & { readonly lines: RecordedLine[] } {
  const at =
    (level: RecordedLine['level']) =>
    (msg: string, fields?: LogFields): void => {
      sink.push({ level, msg, fields: { ...bound, ...fields } });
    };
  return {
    lines: sink,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (fields) => createRecordingLogger({ ...bound, ...fields }, sink),
  };
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};

/** A logger that writes every line to both loggers (e.g. a recorder for assertions and the real log). */
export function teeLogger(a: Logger, b: Logger): Logger {
  const both =
    (k: 'debug' | 'info' | 'warn' | 'error') =>
    (msg: string, fields?: LogFields): void => {
      a[k](msg, fields);
      b[k](msg, fields);
    };
  return {
    debug: both('debug'),
    info: both('info'),
    warn: both('warn'),
    error: both('error'),
    child: (f) => teeLogger(a.child(f), b.child(f)),
  };
}
