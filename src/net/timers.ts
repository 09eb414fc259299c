/** The timers this module needs (the secrets module's real timers fit): injected so tests can fire them. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}
