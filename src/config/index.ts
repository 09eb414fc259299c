// Loads and watches the YAML config and parses it into the mesh model, reporting every problem.
export type { ConfigDiagnostic } from './diagnostics.js';
export { hasErrors } from './diagnostics.js';
export type { LoadResult, ConfigText } from './build-model.js';
export { parseConfigText, parseConfigFiles } from './build-model.js';
export type { LoadOptions } from './load.js';
export { loadConfig, resolveConfigFiles, isConfigFileName } from './load.js';
export { ACCEPTED_KINDS } from './parse-document.js';
export type { ConfigSource, FileConfigSourceOptions, Timers } from './file-source.js';
export { createFileConfigSource } from './file-source.js';
export { bootSettingChanges } from './boot-settings.js';
export type { ConfigLimits } from './limits.js';
export { CONFIG_LIMITS, DEFAULT_CONFIG_LIMITS } from './limits.js';
export { analyzeModel } from './analyze.js';
