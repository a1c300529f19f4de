import type { Logger } from "pino";
import type { AttemptOutcome, AttemptResult } from "../store/deliveryOps.ts";

type Record = (results: readonly AttemptResult[]) => Promise<{ [K in AttemptOutcome]: number }>;

/**
 * Gathers attempt results and writes them in batches: one statement per batch instead of one
 * per delivery. A failed write (database restarting) is retried; results are only dropped
 * when the process dies, and then the leases expire and the deliveries are sent again.
 */
export class ResultWriter {
  private buffer: AttemptResult[] = [];
  private writing = false;
  private timer: NodeJS.Timeout | null = null;
  private idle: Array<() => void> = [];

  constructor(
    private readonly record: Record,
    private readonly onWritten: (counts: { [K in AttemptOutcome]: number }, results: readonly AttemptResult[]) => void,
    private readonly log: Logger,
    private readonly maxBatch = 1000,
  ) {}

  add(result: AttemptResult): void {
    this.buffer.push(result);
    if (!this.writing && this.timer === null) {
      // One tick lets the results of a burst of concurrent deliveries gather into one write.
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.flush();
      }, 1);
    }
  }

  get size(): number {
    return this.buffer.length;
  }

  private async flush(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    let failures = 0;
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, this.maxBatch);
      try {
        const counts = await this.record(batch);
        failures = 0;
        this.onWritten(counts, batch);
      } catch (error) {
        this.buffer.unshift(...batch);
        failures++;
        this.log.warn({ err: error, pending: this.buffer.length }, "writing delivery results failed; retrying");
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** failures)));
      }
    }
    this.writing = false;
    for (const resolve of this.idle.splice(0)) resolve();
  }

  /** Resolves when everything added so far is written (or the deadline passes). */
  async drain(deadlineMs = 5000): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
      void this.flush();
    }
    if (!this.writing && this.buffer.length === 0) return;
    await Promise.race([
      new Promise<void>((resolve) => this.idle.push(resolve)),
      new Promise<void>((resolve) => setTimeout(resolve, deadlineMs).unref()),
    ]);
  }
}
