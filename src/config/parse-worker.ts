// The worker side of loadConfig for large configs: YAML parsing is most of a load's cost
// (seconds for ten thousand Services) and synchronous, so it runs here, off the event loop
// that serves xDS streams; the objects it makes are plain data and cross the thread boundary
// by structured clone.
import { parentPort } from 'node:worker_threads';
import { parseTexts, type ConfigText } from './build-model.js';
import type { ConfigDiagnostic } from './diagnostics.js';
import type { LoadOptions } from './load.js';

/** What the loader sends: the files' texts, the diagnostics so far and the options. */
export interface ParseRequest {
  readonly inputs: readonly ConfigText[];
  readonly extra: readonly ConfigDiagnostic[];
  readonly opts: LoadOptions;
}

parentPort?.on('message', (req: ParseRequest) => {
  try {
    parentPort!.postMessage({ ok: true, value: parseTexts(req.inputs, req.extra, req.opts) });
  } catch (e) {
    parentPort!.postMessage({ ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  }
});
