export { ok, err, unwrap, formatDiagnostic } from './result.js';
export type { Result, Diagnostic } from './result.js';
export { systemClock, createManualClock } from './clock.js';
export type { Clock } from './clock.js';
export { shortHash } from './hash.js';
export { fsErrorText } from './fs-error.js';
