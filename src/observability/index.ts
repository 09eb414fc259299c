export { createLogger, createRecordingLogger, silentLogger } from './logger.js';
export type { Logger, LogFields, RecordedLine } from './logger.js';
