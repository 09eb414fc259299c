// `--log-format json|pretty`, shared by the long-running commands (serve, agent).
import { Option } from 'commander';
import { LOG_FORMATS } from '../observability/index.js';

/** `--log-format json|pretty`: JSON lines by default unless stderr is a terminal. */
export function logFormatOption(): Option {
  return new Option('--log-format <format>', 'json (one object per line) or pretty; default: pretty on a terminal, json otherwise').choices(
    LOG_FORMATS,
  );
}
