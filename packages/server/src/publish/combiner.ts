/**
 * Gathers concurrent calls into batches: while `maxInFlight` writes run, new items wait, and
 * go together in the next write (at most `maxBatch` each). Under load one commit then serves
 * many callers; alone, a call is written at once. Each caller gets the outcome of its own item
 * only after the write holding it finished.
 */
export class Combiner<I, O> {
  private waiting: Array<{ item: I; resolve(outcome: O): void; reject(error: unknown): void }> = [];
  private inFlight = 0;

  constructor(
    /** Writes a batch; resolves to one outcome per item, in order. */
    private readonly write: (items: I[]) => Promise<O[]>,
    private readonly maxBatch: number,
    private readonly maxInFlight: number,
  ) {}

  push(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    while (this.inFlight < this.maxInFlight && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.maxBatch);
      this.inFlight++;
      void this.run(batch).finally(() => {
        this.inFlight--;
        this.next();
      });
    }
  }

  private async run(batch: typeof this.waiting): Promise<void> {
    try {
      const outcomes = await this.write(batch.map((w) => w.item));
      batch.forEach((w, i) => w.resolve(outcomes[i]!));
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
  }
}
