// A bound on the response bytes being written at once, shared by every stream of one server.
// grpc-js copies each response into a framed buffer of its own per stream and holds it until
// HTTP/2 has sent it. When thousands of proxies connect at once, every one of them would hold its
// copy of a CDS response at the same moment (3,333 × 1.2 MiB in a mesh of 10,000 workloads), and
// the allocator keeps that peak as RSS long after. So writes take turns: a write starts when its
// bytes fit under the bound (or nothing else is being written), in the order they asked. A stream
// that does not read (a stopped Envoy) holds its share only for `stallMs`: then its bytes stop
// counting, and it can no longer hold the others back.

/** A write's place in the budget: granted (start was called) or still waiting. */
export interface Reservation {
  /** Gives the bytes back (after the write), or gives up the place if still waiting. Idempotent. */
  release(): void;
  /** True once released. */
  readonly released: boolean;
}

const isReleased = (r: Reservation): boolean => r.released;

/** The shared bound. */
export interface WriteBudget {
  /** Calls start(reservation) once `bytes` fit, in FIFO order; possibly before returning. */
  reserve(bytes: number, start: (r: Reservation) => void): Reservation;
  /** Bytes granted and not yet released or stalled. */
  inFlight(): number;
  /** Reservations waiting for their turn. */
  waiting(): number;
}

/** Options of createWriteBudget. */
export interface WriteBudgetOptions {
  /** Most bytes in flight at once; a single larger write still goes, alone. */
  readonly maxBytes: number;
  /** After this long a granted write stops counting (its stream is not reading). */
  readonly stallMs: number;
  /** Told each time a write stalls. */
  readonly onStall?: (bytes: number) => void;
}

type State = 'waiting' | 'granted' | 'stalled' | 'done';

interface Entry {
  readonly bytes: number;
  readonly start: (r: Reservation) => void;
  readonly handle: Reservation;
  state: State;
  timer?: NodeJS.Timeout;
}

/** Creates a write budget. */
export function createWriteBudget(o: WriteBudgetOptions): WriteBudget {
  let inFlight = 0;
  let waitingCount = 0;
  // A FIFO queue with a moving head: shift() on thousands of waiters would be quadratic.
  let queue: Entry[] = [];
  let head = 0;
  let granting = false;

  const grant = (): void => {
    // start() may release synchronously (its stream ended): the loop already running goes on.
    if (granting) return;
    granting = true;
    try {
      while (head < queue.length) {
        const e = queue[head]!;
        if (e.state !== 'waiting') {
          head++;
          continue;
        }
        if (inFlight > 0 && inFlight + e.bytes > o.maxBytes) break;
        head++;
        waitingCount--;
        e.state = 'granted';
        inFlight += e.bytes;
        e.timer = setTimeout(() => {
          if (e.state !== 'granted') return;
          e.state = 'stalled';
          inFlight -= e.bytes;
          o.onStall?.(e.bytes);
          grant();
        }, o.stallMs);
        e.timer.unref();
        e.start(e.handle);
      }
      if (head > 1024 && head * 2 > queue.length) {
        queue = queue.slice(head);
        head = 0;
      }
    } finally {
      granting = false;
    }
  };

  return {
    reserve(bytes, start) {
      const e: Entry = {
        bytes,
        start,
        state: 'waiting',
        handle: {
          get released() {
            return e.state === 'done';
          },
          release() {
            if (e.state === 'waiting') waitingCount--;
            if (e.state === 'granted') {
              clearTimeout(e.timer);
              inFlight -= e.bytes;
            }
            if (e.state === 'stalled') clearTimeout(e.timer);
            const wasGranted = e.state === 'granted';
            e.state = 'done';
            if (wasGranted) grant();
          },
        },
      };
      queue.push(e);
      waitingCount++;
      grant();
      return e.handle;
    },
    inFlight: () => inFlight,
    waiting: () => waitingCount,
  };
}

/** One stream's writes: in order, each when the shared budget lets it. */
export interface StreamWriter {
  send(bytes: Buffer): void;
  /** Drops what is not yet written and gives back what is held. */
  close(): void;
}

/**
 * A stream writer over `write` (the call's write, whose callback fires once HTTP/2 has taken the
 * bytes, or with an error when the stream is gone). The budget grants in the order writes asked,
 * so a stream's responses keep their order without waiting for each other.
 */
export function createStreamWriter(write: (bytes: Buffer, done: () => void) => void, budget: WriteBudget): StreamWriter {
  const held = new Set<Reservation>();
  let closed = false;
  return {
    send(bytes) {
      if (closed) return;
      const r = budget.reserve(bytes.length, (granted) => {
        if (closed) return granted.release();
        write(bytes, () => {
          granted.release();
          held.delete(granted);
        });
      });
      // Completed before reserve() returned: nothing left to hold.
      if (!closed && !isReleased(r)) held.add(r);
    },
    close() {
      closed = true;
      for (const r of held) r.release();
      held.clear();
    },
  };
}
