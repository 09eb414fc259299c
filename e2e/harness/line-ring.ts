/** Keeps the last `capacity` lines of one or more text streams; partial lines are held per stream until their newline. */
export class LineRing {
  readonly #lines: string[] = [];
  #next = 0;
  #size = 0;
  readonly #partial = new Map<string, string>();

  constructor(readonly capacity: number) {
    if (capacity < 1) throw new Error('LineRing capacity must be at least 1');
  }

  /** Appends a chunk read from `stream`, splitting it into lines. */
  write(stream: string, chunk: string): void {
    const text = (this.#partial.get(stream) ?? '') + chunk;
    const parts = text.split('\n');
    this.#partial.set(stream, parts.pop() ?? '');
    for (const line of parts) this.#push(line);
  }

  /** Moves every held partial line into the ring (call when the streams end). */
  flush(): void {
    for (const [stream, rest] of this.#partial) {
      if (rest !== '') this.#push(rest);
      this.#partial.delete(stream);
    }
  }

  /** Returns the last `count` lines (default: all kept), oldest first, partial lines included. */
  tail(count = this.capacity): string[] {
    const kept: string[] = [];
    for (let i = 0; i < this.#size; i++) kept.push(this.#lines[(this.#next - this.#size + i + this.capacity) % this.capacity]);
    for (const rest of this.#partial.values()) if (rest !== '') kept.push(rest);
    return kept.slice(Math.max(0, kept.length - count));
  }

  #push(line: string): void {
    this.#lines[this.#next] = line;
    this.#next = (this.#next + 1) % this.capacity;
    this.#size = Math.min(this.#size + 1, this.capacity);
  }
}
