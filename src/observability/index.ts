export { createLogger, createRecordingLogger, silentLogger, teeLogger } from './logger.js';
export type { Logger, LogFields, RecordedLine } from './logger.js';
export { createMetrics } from './metrics.js';
export type { Metrics } from './metrics.js';
