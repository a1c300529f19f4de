import type { Logger } from "pino";

/**
 * Deletes rows past their retention period (audit entries; messages go by whole days, see
 * dayRetention.ts), in small batches so that no sweep holds locks or bloats a transaction.
 * Every node runs it; SKIP LOCKED keeps them apart.
 */
export class RetentionSweeper {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly sweepBatch: (batchSize: number) => Promise<number>,
    /** `what`: what it deletes, as the log says it (default: finished messages). */
    private readonly options: { intervalMs: number; batchSize: number; what?: string },
    private readonly log: Logger,
  ) {}

  start(): void {
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.sweep().finally(() => this.schedule()), this.options.intervalMs);
    this.timer.unref();
  }

  /** One sweep: batches until a batch comes back short. Returns the rows deleted. */
  async sweep(): Promise<number> {
    let total = 0;
    try {
      for (;;) {
        const n = await this.sweepBatch(this.options.batchSize);
        total += n;
        if (n < this.options.batchSize || this.stopped) break;
      }
      if (total > 0) this.log.info({ deleted: total }, `retention: deleted ${this.options.what ?? "finished messages"}`);
    } catch (error) {
      this.log.warn({ err: error }, "retention sweep failed");
    }
    return total;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
