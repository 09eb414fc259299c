// meshpilot alone in a child process (run with --expose-gc) for the real-path benchmark,
// driven only through startMeshpilot and the members of what it returns that the bench
// may use (xdsPort, mintToken, ca.trustBundle, config.subscribe, stop), so the same
// bench measures the push path before and after it is rewritten. Its heap and RSS hold
// meshpilot and nothing of the clients. Steered over IPC by real.bench.ts.
import { createEtcdObjectStore, createStoreConfigSource } from '../../src/config/index.js';
import { startMeshpilot, type MeshpilotOptions, type RunningMeshpilot } from '../../src/main.js';
import { createEtcdClient, parseEtcdConnection } from '../../src/store/index.js';
import { encodingCount } from '../../src/snapshot/index.js';
import type { Logger } from '../../src/observability/index.js';
import { serveParent } from './child.js';
import { epochMs, settledMemory, type Memory } from './measure.js';

/** The --etcd-* flag values and the --ca-store-key of a replica. */
interface EtcdFlags {
  readonly endpoints: string;
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  /** The CA store's sealing key, 32 bytes in hex (the same for every replica). */
  readonly caStoreKeyHex: string;
}

/** What the bench asks the meshpilot child. */
export type RealServerCommand =
  | {
      readonly cmd: 'start';
      readonly configDir: string;
      /**
       * A replica on etcd, as `serve --config-store etcd --ca-store etcd` runs: the config from the
       * store and the CA shared through it (sealed with `caStoreKeyHex`). The --etcd-* flag values.
       */
      readonly etcd?: EtcdFlags;
    }
  /** Mints one token per (namespace, service account), in order. */
  | { readonly cmd: 'mint'; readonly accounts: readonly (readonly [string, string])[] }
  /** Resolves when config.subscribe has delivered a model holding this object (or already did). */
  | {
      readonly cmd: 'await-model';
      readonly kind: 'service' | 'workload';
      readonly namespace: string;
      readonly name: string;
      readonly timeoutMs: number;
    }
  | { readonly cmd: 'encodings' }
  | { readonly cmd: 'memory' }
  /** Warnings and errors meshpilot logged so far, counted by message, with the first line's fields. */
  | { readonly cmd: 'log-counts' }
  | { readonly cmd: 'stop' };

/** The meshpilot child's answer. */
export interface RealServerReply {
  readonly port?: number;
  readonly rootPem?: string;
  readonly tokens?: readonly string[];
  /** Epoch milliseconds (performance.timeOrigin + performance.now()) when the model was delivered. */
  readonly atMs?: number;
  readonly encodings?: number;
  readonly memory?: Memory;
  readonly logCounts?: Readonly<Record<string, { readonly count: number; readonly first: string }>>;
}

/** A logger that drops every line but counts warnings and errors by level and message, so the report can name them. */
function countingLogger(counts: Map<string, number>): Logger {
  const count = (level: string) => (msg: string, fields?: Readonly<Record<string, unknown>>) => {
    const k = `${level}: ${msg}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
    // The first line of each kind keeps its fields, so the report can say why.
    if (!samples.has(k)) samples.set(k, JSON.stringify(fields ?? {}).slice(0, 400));
  };
  const log: Logger = { debug: () => {}, info: () => {}, warn: count('warn'), error: count('error'), child: () => log };
  return log;
}

// What `serve --config-store etcd --ca-store etcd --ca-store-key FILE` opens, from the same flags.
function onEtcd(e: EtcdFlags): Pick<MeshpilotOptions, 'configSource' | 'caStore'> {
  const cfg = parseEtcdConnection({ etcdEndpoints: e.endpoints, etcdCa: e.ca, etcdCert: e.cert, etcdKey: e.key });
  if (!cfg.ok || !cfg.value) throw new Error(cfg.ok ? 'no etcd endpoints' : cfg.error);
  const c = cfg.value;
  const store = createEtcdObjectStore({ client: createEtcdClient(c), prefix: c.prefix, endpoints: c.endpoints, ownsClient: true });
  return {
    configSource: ({ log, admit }) => ({ source: createStoreConfigSource({ store, log, admit }), close: () => store.close() }),
    caStore: { connection: c, sealingKey: Buffer.from(e.caStoreKeyHex, 'hex'), sealingKeySource: '--ca-store-key (bench)' },
  };
}

const counts = new Map<string, number>();
const samples = new Map<string, string>();
let mesh: RunningMeshpilot | undefined;
/** Every model delivered, with when: a wait may start after its model arrived. */
const delivered: { model: Parameters<Parameters<RunningMeshpilot['config']['subscribe']>[0]>[0]; atMs: number }[] = [];
const waiters = new Set<() => void>();

serveParent<RealServerCommand, RealServerReply>(
  async (m) => {
    switch (m.cmd) {
      case 'start': {
        mesh = await startMeshpilot({
          configPaths: [m.configDir],
          ...(m.etcd ? onEtcd(m.etcd) : {}),
          ephemeral: true,
          xdsHost: '127.0.0.1',
          xdsPort: 0,
          log: countingLogger(counts),
          // The whole fleet connects from 127.0.0.1: one source, far past the per-source default.
          connectionLimits: { xds: { maxPerSource: 1_000_000 } },
        });
        mesh.config.subscribe((model) => {
          delivered.push({ model, atMs: epochMs() });
          // Only the latest model is kept, so old models do not count in the memory figures.
          if (delivered.length > 1) delivered.shift();
          for (const w of [...waiters]) w();
        });
        return { port: mesh.xdsPort, rootPem: mesh.ca.trustBundle().pem };
      }
      case 'mint': {
        const tokens: string[] = [];
        for (const [ns, sa] of m.accounts) tokens.push(await mesh!.mintToken(ns, sa));
        return { tokens };
      }
      case 'await-model': {
        const find = () =>
          delivered.find((d) => (m.kind === 'service' ? d.model.service(m.namespace, m.name) : d.model.workload(m.namespace, m.name)));
        const hit =
          find() ??
          (await new Promise<(typeof delivered)[number]>((resolve, reject) => {
            const timer = setTimeout(() => {
              waiters.delete(check);
              reject(new Error(`no model with ${m.kind} ${m.namespace}/${m.name} after ${m.timeoutMs} ms`));
            }, m.timeoutMs);
            const check = () => {
              const d = find();
              if (!d) return;
              clearTimeout(timer);
              waiters.delete(check);
              resolve(d);
            };
            waiters.add(check);
          }));
        return { atMs: hit.atMs };
      }
      case 'encodings':
        return { encodings: encodingCount() };
      case 'memory':
        return { memory: await settledMemory() };
      case 'log-counts':
        return { logCounts: Object.fromEntries([...counts].map(([k, count]) => [k, { count, first: samples.get(k) ?? '' }])) };
      case 'stop':
        await mesh?.stop();
        mesh = undefined;
        return {};
    }
  },
  async () => {
    await mesh?.stop();
  },
);
