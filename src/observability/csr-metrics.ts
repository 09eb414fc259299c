// The CSR service reports its outcomes in its log ('certificate issued', 'csr rejected'
// with the error kind); this logger counts them on the way through, so the service needs
// no metrics dependency. Its rate-limit refusals are logged 1st, 10th, 100th... in a row,
// so a flood is undercounted by design: the count follows the log, not every request.
import type { LogFields, Logger } from './logger.js';

/** What the counting logger increments. */
export interface CsrCounters {
  readonly csrCount: { inc(): void };
  readonly csrIssued: { inc(): void };
  readonly csrRefused: { inc(labels: { reason: string }): void };
}

/** Wraps the CSR service's logger so that each issuance and refusal it logs is counted. */
export function countingCsrLogger(log: Logger, m: CsrCounters): Logger {
  const count = (msg: string, fields?: LogFields) => {
    if (msg === 'certificate issued') {
      m.csrCount.inc();
      m.csrIssued.inc();
    } else if (msg === 'csr rejected') {
      m.csrCount.inc();
      m.csrRefused.inc({ reason: typeof fields?.kind === 'string' ? fields.kind : 'unknown' });
    }
  };
  return {
    debug: (msg, f) => log.debug(msg, f),
    info: (msg, f) => {
      count(msg, f);
      log.info(msg, f);
    },
    warn: (msg, f) => {
      count(msg, f);
      log.warn(msg, f);
    },
    error: (msg, f) => log.error(msg, f),
    child: (f) => countingCsrLogger(log.child(f), m),
  };
}
