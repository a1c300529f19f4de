/** What one item of a combined call came to. */
export type ItemResult<O> = { value: O } | { error: unknown };

/**
 * The calls of concurrent `transaction()`s, sent together. A call that finds none of its kind
 * on its way goes out at once, alone (`single`); the ones that arrive meanwhile wait for its
 * answer and then go together (`many`, at most `maxBatch` items and about `maxBytes` of
 * request). A lone transaction waits for nothing; 32 at a time send a few requests where they
 * sent 32, and each HTTP request costs producer and service about as much as the service's
 * combined statement. Each caller gets its own item's outcome.
 */
export class CallCombiner<I, O> {
  private waiting: Array<{ item: I; resolve(value: O): void; reject(error: unknown): void }> = [];
  private busy = false;

  constructor(
    private readonly single: (item: I) => Promise<O>,
    /** One result per item, in order; throws when the whole request failed. */
    private readonly many: (items: I[]) => Promise<Array<ItemResult<O>>>,
    private readonly limits: { maxBatch: number; maxBytes: number; bytesOf(item: I): number },
  ) {}

  push(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.busy || this.waiting.length === 0) return;
    let count = 0;
    let bytes = 0;
    while (count < this.waiting.length && count < this.limits.maxBatch) {
      bytes += this.limits.bytesOf(this.waiting[count]!.item);
      if (count > 0 && bytes > this.limits.maxBytes) break;
      count++;
    }
    const batch = this.waiting.splice(0, count);
    this.busy = true;
    void this.send(batch).finally(() => {
      this.busy = false;
      this.next();
    });
  }

  private async send(batch: typeof this.waiting): Promise<void> {
    if (batch.length === 1) {
      const only = batch[0]!;
      await this.single(only.item).then(only.resolve, only.reject);
      return;
    }
    let results: Array<ItemResult<O>>;
    try {
      results = await this.many(batch.map((w) => w.item));
    } catch (error) {
      for (const w of batch) w.reject(error);
      return;
    }
    batch.forEach((w, i) => {
      const result = results[i];
      if (result && "value" in result) w.resolve(result.value);
      else w.reject(result ? result.error : new Error("a combined call answered fewer items than it was sent"));
    });
  }
}
