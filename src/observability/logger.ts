import { pino } from 'pino';
import { PinoPretty } from 'pino-pretty';

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

/** How log lines look: one JSON object per line (for collectors), or pretty (for a person at a terminal). */
export type LogFormat = 'json' | 'pretty';

/** The formats `--log-format` accepts. */
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];

/** The format a logger uses when none is asked for: pretty when its stream (stderr) is a terminal, JSON otherwise. */
export function defaultLogFormat(stream: { isTTY?: boolean } = process.stderr): LogFormat {
  return stream.isTTY === true ? 'pretty' : 'json';
}

/**
 * A logger (pino) writing to stderr at the given level: JSON lines, or, for a terminal, pino-pretty's
 * one line per event with a local time, the level and the fields (config errors with file and line
 * read as text, not as JSON with epoch timestamps).
 */
export function createLogger(
  opts: { level?: string; name?: string; format?: LogFormat; destination?: NodeJS.WritableStream } = {},
): Logger {
  const format = opts.format ?? defaultLogFormat();
  const options = { level: opts.level ?? process.env.MESHPILOT_LOG_LEVEL ?? 'info', name: opts.name ?? 'meshpilot' };
  const base =
    format === 'pretty'
      ? // sync: a line is written before the call returns, so nothing is lost when the process exits on an error.
        pino(
          options,
          PinoPretty({
            destination: opts.destination ?? 2,
            sync: true,
            colorize: opts.destination === undefined && process.stderr.isTTY === true,
            translateTime: 'SYS:HH:MM:ss.l',
            ignore: 'pid,hostname',
          }),
        )
      : pino(options, opts.destination ?? pino.destination(2));
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
