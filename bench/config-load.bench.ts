// Config loading benchmark: a generated config of 10,000 Services (each with its ServiceAccount
// and WorkloadEntry, about 4 MB) parsed into a model, against the floor: the YAML parse alone.
import { parseAllDocuments } from 'yaml';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadConfig, parseConfigText } from '../src/config/index.js';
import { result, type BenchResult } from './lib/report.js';

/** Generates a config of n Services across 100 namespaces, each selecting its own WorkloadEntry. */
export function generateConfig(n: number): string {
  const docs: string[] = [];
  for (let i = 0; i < n; i++) {
    const ns = `ns-${i % 100}`;
    const name = `svc-${i}`;
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    docs.push(
      `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ${name}\n  namespace: ${ns}\n`,
      `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  namespace: ${ns}\n  labels:\n    app: ${name}\nspec:\n  selector:\n    app: ${name}\n    tier: backend\n  ports:\n    - name: http\n      port: 8080\n      targetPort: 9080\n`,
      `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n  address: ${ip}\n  serviceAccount: ${name}\n  labels:\n    app: ${name}\n    tier: backend\n    security.istio.io/tlsMode: istio\n  ports:\n    http: 9080\n`,
    );
  }
  return docs.join('---\n');
}

function seconds(f: () => unknown): number {
  const t0 = performance.now();
  f();
  return (performance.now() - t0) / 1000;
}

/** Loads the generated config (best of three) and reports seconds against the bare YAML parse. */
export async function run(): Promise<BenchResult[]> {
  const text = generateConfig(10_000);
  let load = Infinity;
  let floor = Infinity;
  for (let i = 0; i < 3; i++) {
    floor = Math.min(
      floor,
      seconds(() => parseAllDocuments(text)),
    );
    load = Math.min(
      load,
      seconds(() => {
        const r = parseConfigText(text, 'bench.yaml');
        if (!r.model) throw new Error(`bench config rejected: ${JSON.stringify(r.diagnostics.slice(0, 3))}`);
        // Selection is lazy: ask for it, as the push path does on every model.
        for (const s of r.model.services) r.model.workloadsOf(s);
      }),
    );
  }
  // The path `serve` takes: loadConfig from a file, which parses a large config on a worker
  // thread. What matters to the xDS streams is the longest the event loop was held meanwhile.
  const dir = mkdtempSync(join(tmpdir(), 'meshpilot-bench-config-'));
  let stallMs: number;
  let fileLoad: number;
  try {
    writeFileSync(join(dir, 'mesh.yaml'), text);
    const h = monitorEventLoopDelay({ resolution: 5 });
    h.enable();
    const t0 = performance.now();
    const r = await loadConfig([dir]);
    fileLoad = (performance.now() - t0) / 1000;
    h.disable();
    if (!r.model) throw new Error('bench config rejected');
    stallMs = h.max / 1e6;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return [
    result({
      name: 'config load 10k services, longest event-loop stall (worker parse)',
      value: stallMs,
      unit: 'ms',
      baseline: { name: 'inline load (whole parse on the loop)', value: load * 1000 },
      note: `the whole load took ${fileLoad.toFixed(1)} s`,
    }),
    result({
      name: 'config load 10k services',
      value: load,
      unit: 's',
      baseline: { name: 'yaml parse', value: floor },
      target: '< 1 s',
      note: `${(text.length / 1e6).toFixed(1)} MB, ${3 * 10_000} objects`,
    }),
  ];
}
