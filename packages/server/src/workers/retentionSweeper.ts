import type { Logger } from "pino";
import { Repeating } from "./repeating.ts";

/**
 * Deletes rows past their retention period (audit entries; messages go by whole days, see
 * dayRetention.ts), in small batches so that no sweep holds locks or bloats a transaction.
 * Every node runs it; SKIP LOCKED keeps them apart.
 */
export class RetentionSweeper {
  private readonly repeating: Repeating;

  constructor(
    private readonly sweepBatch: (batchSize: number) => Promise<number>,
    /** `what`: what it deletes, as the log says it. */
    private readonly options: { intervalMs: number; batchSize: number; what: string },
    private readonly log: Logger,
  ) {
    this.repeating = new Repeating(this.options.intervalMs, () => this.sweep());
  }

  start(): void {
    this.repeating.start();
  }

  /** One sweep: batches until a batch comes back short. Returns the rows deleted. */
  async sweep(): Promise<number> {
    let total = 0;
    try {
      for (;;) {
        const n = await this.sweepBatch(this.options.batchSize);
        total += n;
        if (n < this.options.batchSize || this.repeating.isStopped) break;
      }
      if (total > 0) this.log.info({ deleted: total }, `retention: deleted ${this.options.what}`);
    } catch (error) {
      this.log.warn({ err: error }, "retention sweep failed");
    }
    return total;
  }

  stop(): void {
    this.repeating.stop();
  }
}
