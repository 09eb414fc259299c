import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { ConfigDiagnostic } from './diagnostics.js';
import { fsErrorText } from '../lib/index.js';
import { Worker } from 'node:worker_threads';
import { buildParsed, parseConfigFiles, type ConfigText, type LoadResult, type ParsedFiles } from './build-model.js';
import { configLimits, overLimit, type ConfigLimits } from './limits.js';
import type { ParseOptions } from './parse-document.js';

/** Options of loadConfig: how documents without a namespace are read, the limits, and where parsing runs. */
export type LoadOptions = ParseOptions & {
  readonly limits?: Partial<ConfigLimits>;
  /** Configs of at least this many bytes are parsed on a worker thread (default 256 KiB); Infinity parses inline. */
  readonly workerThresholdBytes?: number;
};

const WORKER_THRESHOLD_BYTES = 256 * 1024;

/** Parses on a worker thread: the event loop keeps serving streams while a large config is read. */
function parseOnWorker(inputs: readonly ConfigText[], extra: readonly ConfigDiagnostic[], opts: LoadOptions): Promise<ParsedFiles> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./parse-worker.js', import.meta.url));
    let settled = false;
    const done = (f: () => void) => {
      if (settled) return;
      settled = true;
      void worker.terminate();
      f();
    };
    worker.once('message', (m: { ok: true; value: ParsedFiles } | { ok: false; error: string }) =>
      done(() => (m.ok ? resolve(m.value) : reject(new Error(`config parser failed: ${m.error}`)))),
    );
    worker.once('error', (e) => done(() => reject(e)));
    worker.once('exit', (code) => done(() => reject(new Error(`config parser exited with code ${code}`))));
    const { workerThresholdBytes: _, ...rest } = opts;
    worker.postMessage({ inputs, extra, opts: rest });
  });
}

const YAML_EXTENSIONS = new Set(['.yaml', '.yml']);

/** True for file names the loader reads from a directory. */
export function isConfigFileName(name: string): boolean {
  return YAML_EXTENSIONS.has(extname(name).toLowerCase()) && !name.startsWith('.');
}

/** Lists the files a set of paths stands for: files as given, directories as their `*.yaml`/`*.yml` files, sorted (not recursive). */
export async function resolveConfigFiles(paths: readonly string[]): Promise<{ files: string[]; diagnostics: ConfigDiagnostic[] }> {
  const files: string[] = [];
  const diagnostics: ConfigDiagnostic[] = [];
  for (const p of paths) {
    try {
      const s = await stat(p);
      if (s.isDirectory()) {
        const names = (await readdir(p)).filter(isConfigFileName).sort();
        // A loop, not push(...names): a directory of many files would overflow the stack.
        for (const n of names) files.push(join(p, n));
      } else files.push(p);
    } catch (e) {
      diagnostics.push({
        severity: 'error',
        file: p,
        path: '',
        message: `cannot read: ${fsErrorText(e)}`,
      });
    }
  }
  return { files: [...new Set(files)], diagnostics };
}

/** Loads files and directories of YAML config into a model, gathering every problem; `opts.limits` raises or lowers CONFIG_LIMITS. */
export async function loadConfig(paths: readonly string[], opts: LoadOptions = {}): Promise<LoadResult> {
  const limits = configLimits(opts.limits ?? {});
  const { files, diagnostics } = await resolveConfigFiles(paths);
  const texts: ConfigText[] = [];
  for (const file of files) {
    try {
      // Checked before reading, so that a huge file is never held in memory.
      const { size } = await stat(file);
      if (size > limits.maxFileBytes) {
        diagnostics.push({
          severity: 'error',
          file,
          line: 1,
          column: 1,
          path: '',
          message: overLimit('maxFileBytes', limits, `${size} bytes`),
        });
        continue;
      }
      texts.push({ fileName: file, text: await readFile(file, 'utf8') });
    } catch (e) {
      diagnostics.push({
        severity: 'error',
        file,
        path: '',
        message: `cannot read: ${fsErrorText(e)}`,
      });
    }
  }
  // An empty config would withdraw every workload from the mesh: refuse it, the last good config keeps serving.
  if (files.length === 0 && diagnostics.length === 0)
    diagnostics.push({ severity: 'error', file: paths.join(', '), path: '', message: 'no config files (*.yaml, *.yml) found' });
  const bytes = texts.reduce((n, t) => n + t.text.length, 0);
  if (bytes < (opts.workerThresholdBytes ?? WORKER_THRESHOLD_BYTES)) return parseConfigFiles(texts, diagnostics, { ...opts, limits });
  return buildParsed(texts, await parseOnWorker(texts, diagnostics, { ...opts, limits }));
}
