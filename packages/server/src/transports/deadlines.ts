/**
 * The overall deadline and the shutdown abort of the exchanges whose answers are still arriving
 * after their headers, without a timer or an abort listener per exchange: they are kept in one
 * set, swept four times a second while it is not empty, and a shutdown signal gets one listener
 * that ends those tied to it. Nothing per exchange outlives the exchange: per-delivery timers,
 * listeners, or entries kept until their deadline each made objects that survive to the old
 * generation, and cost the deliver workload 10-20% of its rate.
 */
export interface Tracked {
  /** When it must have ended (performance.now() ms). */
  deadlineAt: number;
  /** The signal that ends it early, if any. */
  readonly signal: AbortSignal | undefined;
  /** The deadline passed: end the exchange. */
  expire(): void;
  /** Its signal was aborted: end the exchange. */
  abort(): void;
}

/** How often the deadlines are checked: an exchange ends at most this late. */
export const SWEEP_MS = 250;

export class Deadlines {
  private readonly live = new Set<Tracked>();
  private timer: NodeJS.Timeout | null = null;
  private readonly listened = new WeakSet<AbortSignal>();

  constructor(private readonly timeoutMs: number) {}

  /**
   * Tracks an exchange until `done()`: it is expired at its `deadlineAt` (when 0: the timeout
   * from now), or aborted with its signal.
   */
  add(tracked: Tracked): void {
    if (tracked.deadlineAt === 0) tracked.deadlineAt = performance.now() + this.timeoutMs;
    this.live.add(tracked);
    const signal = tracked.signal;
    if (signal && !this.listened.has(signal)) {
      this.listened.add(signal);
      signal.addEventListener(
        "abort",
        () => {
          for (const t of [...this.live]) if (t.signal === signal) t.abort();
        },
        { once: true },
      );
    }
    if (this.timer === null) {
      this.timer = setInterval(() => this.sweep(), Math.min(SWEEP_MS, this.timeoutMs));
      this.timer.unref();
    }
  }

  /** The exchange ended (on any path). */
  done(tracked: Tracked): void {
    this.live.delete(tracked);
  }

  private sweep(): void {
    const now = performance.now();
    for (const t of this.live) if (t.deadlineAt <= now) t.expire();
    if (this.live.size === 0) this.close();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
