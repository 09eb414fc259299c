// Recent mesh events for the mesh page: a bounded ring buffer, fed from main.ts hooks, so a
// burst of NACKs or pushes can never grow memory, and recording one costs O(1) on the push path.
import type { Clock } from '../lib/index.js';
import type { LogFields, Logger } from '../observability/index.js';

/** What happened, as the page shows it. */
export type MeshEventKind = 'config-accepted' | 'config-refused' | 'push' | 'nack' | 'revocation' | 'rotation';

/** One recorded event; `text` is display text (names from config stay plain text in the page). */
export interface MeshEvent {
  readonly seq: number;
  readonly at: number;
  readonly kind: MeshEventKind;
  readonly text: string;
}

/** The ring buffer and its change subscription. */
export interface MeshEvents {
  record(kind: MeshEventKind, text: string): void;
  /** Oldest first, at most `capacity`. */
  list(): readonly MeshEvent[];
  /** Calls `cb` after each record; returns the unsubscribe function. */
  onRecord(cb: () => void): () => void;
}

/** Creates the ring buffer keeping the last `capacity` events. */
export function createMeshEvents(deps: { clock: Clock; capacity?: number }): MeshEvents {
  const capacity = deps.capacity ?? 200;
  const ring: MeshEvent[] = [];
  let next = 0;
  let seq = 0;
  const listeners = new Set<() => void>();
  return {
    record(kind, text) {
      const e = { seq: ++seq, at: deps.clock.now(), kind, text };
      if (ring.length < capacity) ring.push(e);
      else ring[next] = e;
      next = (next + 1) % capacity;
      for (const l of listeners) l();
    },
    list: () => (ring.length < capacity ? [...ring] : [...ring.slice(next), ...ring.slice(0, next)]),
    onRecord(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
  };
}

/** Wraps the config source's logger so accepted and refused configs become events (with file:line for a refusal). */
export function configEventLogger(log: Logger, events: MeshEvents): Logger {
  const tap = (fields: LogFields | undefined, msg: string): void => {
    const f = (fields ?? {}) as Record<string, unknown>;
    if (msg === 'config accepted') events.record('config-accepted', `config accepted (version ${String(f.version)})`);
    if (msg === 'config rejected') {
      const where = f.file ? `${String(f.file)}${f.line ? `:${String(f.line)}` : ''}: ` : '';
      events.record('config-refused', `config refused: ${where}${f.path ? `${String(f.path)}: ` : ''}${String(f.message)}`);
    }
  };
  return {
    debug: (m, f) => log.debug(m, f),
    info: (m, f) => (tap(f, m), log.info(m, f)),
    warn: (m, f) => log.warn(m, f),
    error: (m, f) => (tap(f, m), log.error(m, f)),
    child: (f) => configEventLogger(log.child(f), events),
  };
}
