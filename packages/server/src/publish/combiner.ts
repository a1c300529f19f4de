import { unavailable } from "../domain/errors.ts";

export interface CombinerLimits {
  /** Items waiting at most; more are refused with 503 (and Retry-After) until the queue drains. */
  maxWaiting: number;
  /** Bytes (as the caller weighs its items) waiting at most. */
  maxWaitingBytes: number;
  /**
   * Whether a write failed because of an item's content rather than the database being
   * unavailable: then its items are written again in halves, so that only the culprit fails.
   */
  isItemError(error: unknown): boolean;
}

interface Waiting<I, O> {
  item: I;
  bytes: number;
  resolve(outcome: O): void;
  reject(error: unknown): void;
}

/**
 * Gathers concurrent calls into batches: while `maxInFlight` writes run, new items wait, and
 * go together in the next write (at most `maxBatch` each). Under load one commit then serves
 * many callers; alone, a call is written at once. Each caller gets the outcome of its own item
 * only after the write holding it finished. The wait is bounded: a slow database answers 503s
 * instead of piling requests up in memory. An item the database refuses fails alone.
 */
export class Combiner<I, O> {
  private waiting: Array<Waiting<I, O>> = [];
  private waitingBytes = 0;
  private inFlight = 0;

  constructor(
    /** Writes a batch; resolves to one outcome per item, in order. */
    private readonly write: (items: I[]) => Promise<O[]>,
    private readonly maxBatch: number,
    private readonly maxInFlight: number,
    private readonly limits: CombinerLimits = { maxWaiting: Infinity, maxWaitingBytes: Infinity, isItemError: () => false },
  ) {}

  /** Items waiting for a write now. */
  get queued(): number {
    return this.waiting.length;
  }

  push(item: I, bytes = 0): Promise<O> {
    if (this.waiting.length > 0 && (this.waiting.length >= this.limits.maxWaiting || this.waitingBytes + bytes > this.limits.maxWaitingBytes)) {
      return Promise.reject(unavailable("too many messages are waiting to be stored; try again shortly", 1));
    }
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, bytes, resolve, reject });
      this.waitingBytes += bytes;
      this.next();
    });
  }

  private next(): void {
    while (this.inFlight < this.maxInFlight && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.maxBatch);
      for (const w of batch) this.waitingBytes -= w.bytes;
      this.inFlight++;
      void this.run(batch).finally(() => {
        this.inFlight--;
        this.next();
      });
    }
  }

  private async run(batch: Array<Waiting<I, O>>): Promise<void> {
    try {
      const outcomes = await this.write(batch.map((w) => w.item));
      for (const [i, w] of batch.entries()) w.resolve(outcomes[i]!);
    } catch (error) {
      if (batch.length > 1 && this.limits.isItemError(error)) {
        // Halve until the culprit stands alone: a few statements more, and its neighbours pass.
        const half = Math.ceil(batch.length / 2);
        await this.run(batch.slice(0, half));
        await this.run(batch.slice(half));
        return;
      }
      for (const w of batch) w.reject(error);
    }
  }
}
