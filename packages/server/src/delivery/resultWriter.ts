import type { Logger } from "pino";
import { isDataError } from "../store/db.ts";
import type { AttemptOutcome, AttemptResult } from "../domain/delivery.ts";

type Record = (results: readonly AttemptResult[]) => Promise<{ [K in AttemptOutcome]: number }>;

/** What an attempt's error text becomes when the database refused the text itself. */
const UNSTORABLE = "the attempt's error text could not be stored";

/**
 * Gathers attempt results and writes them in batches: one statement per batch instead of one
 * per delivery. A write that fails because the database is unreachable or restarting is
 * retried with backoff; results are only dropped when the process dies, and then the leases
 * expire and the deliveries are sent again. A batch the database refuses for its data is
 * halved down to the result at fault, which is written with its error text replaced, or
 * dropped with a log line (its lease expires and the delivery is sent again), so that one bad
 * result never holds back the others.
 */
export class ResultWriter {
  private buffer: AttemptResult[] = [];
  private writing = false;
  private timer: NodeJS.Timeout | null = null;
  private idle: Array<() => void> = [];
  /** Results already rewritten without their texts: refused again, they are dropped. */
  private readonly scrubbed = new WeakSet<AttemptResult>();

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

  private async write(batch: readonly AttemptResult[]): Promise<void> {
    const counts = await this.record(batch);
    this.onWritten(counts, batch);
  }

  private async flush(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    let failures = 0;
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, this.maxBatch);
      try {
        await this.write(batch);
        failures = 0;
      } catch (error) {
        try {
          if (!isDataError(error)) {
            // The database is away: the whole batch is written again after the backoff.
            this.buffer.unshift(...batch);
            throw error;
          }
          await this.isolate(batch, error);
          failures = 0;
        } catch (retryable) {
          failures++;
          this.log.warn({ err: retryable, pending: this.buffer.length }, "writing delivery results failed; retrying");
          await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** failures)));
        }
      }
    }
    this.writing = false;
    for (const resolve of this.idle.splice(0)) resolve();
  }

  /**
   * Writes a batch the database refused for its data, in halves, down to the results at fault.
   * On any other error, what is not yet written goes back to the front of the buffer and the
   * error is thrown (the caller backs off and retries).
   */
  private async isolate(batch: AttemptResult[], first: unknown): Promise<void> {
    // Each piece with the error the database gave for it, or null when not yet tried.
    const pieces: Array<{ results: AttemptResult[]; refused: unknown }> = [{ results: batch, refused: first }];
    while (pieces.length > 0) {
      const { results } = pieces[0]!;
      let { refused } = pieces.shift()!;
      if (refused === null) {
        try {
          await this.write(results);
          continue;
        } catch (error) {
          if (!isDataError(error)) {
            this.buffer.unshift(...results, ...pieces.flatMap((p) => p.results));
            throw error;
          }
          refused = error;
        }
      }
      if (results.length > 1) {
        const mid = results.length >> 1;
        pieces.unshift({ results: results.slice(0, mid), refused: null }, { results: results.slice(mid), refused: null });
        continue;
      }
      const r = results[0]!;
      const code = (refused as { code?: string }).code;
      if (!this.scrubbed.has(r)) {
        this.log.warn(
          { err: refused, code, deliveryId: r.deliveryId, messageId: r.messageId },
          "the database refused an attempt result; writing it without its error text",
        );
        const plain: AttemptResult = { ...r, error: UNSTORABLE, deadReason: r.deadReason === null ? null : "dead" };
        this.scrubbed.add(plain);
        pieces.unshift({ results: [plain], refused: null });
        continue;
      }
      this.log.error(
        { err: refused, code, deliveryId: r.deliveryId, messageId: r.messageId },
        "an attempt result cannot be written; dropped (its lease expires and the delivery is sent again)",
      );
    }
  }

  /** Resolves when everything added so far is written (or the deadline passes). */
  async drain(deadlineMs = 5000): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
      void this.flush();
    }
    if (!this.writing && this.buffer.length === 0) return;
    await Promise.race([new Promise<void>((resolve) => this.idle.push(resolve)), new Promise<void>((resolve) => setTimeout(resolve, deadlineMs).unref())]);
  }
}
