import { dialectOf } from "../executor/dialect.ts";
import type { Executor } from "../executor/executor.ts";
import { TidingsError } from "../errors.ts";
import {
  countRecords,
  deleteOldBatch,
  getRecord,
  insertApplied,
  insertReceived,
  listRecords,
  lockStatus,
  markApplied,
  recordFailure,
  statusesOf,
  type InboxMessage,
  type InboxRecord,
  type InboxStatus,
} from "./inboxQueries.ts";

export interface InboxOptions {
  /** Tells consumers sharing one database apart; default "default". */
  consumer?: string;
  /**
   * Records are deleted this long after their last change; default 7 days. Keep it longer than
   * the longest redelivery window of your subscriptions, or a very late duplicate is applied again.
   */
  retentionMs?: number;
  cleanupBatchSize?: number;
  /**
   * How often `handle()` deletes old records by itself, in the background (at most once per this
   * long per database); default 1 hour; 0: never (call `cleanup(db)` yourself).
   */
  cleanupIntervalMs?: number;
}

export type InboxOutcome<T> = { status: "applied"; value: T } | { status: "duplicate" };

const ERROR_TEXT_LIMIT = 2000;

/**
 * The consumer inbox: turns at-least-once delivery into an exactly-once effect. `handle` records
 * the message in `tidings_inbox` in the same local transaction as the business change: a message
 * already applied is skipped and reported as a duplicate; an error rolls the change back, is
 * recorded with its text in a separate write, and is rethrown so the delivery is retried.
 */
export class Inbox {
  readonly consumer: string;
  /** How long records are kept after their last change (a reconciliation window must stay within it). */
  readonly retentionMs: number;
  private readonly cleanupBatchSize: number;

  constructor(options: InboxOptions = {}) {
    this.consumer = options.consumer ?? "default";
    if (!/^.{1,100}$/.test(this.consumer)) throw new TidingsError("config", "consumer must be 1 to 100 characters");
    this.retentionMs = options.retentionMs ?? 7 * 86_400_000;
    this.cleanupBatchSize = options.cleanupBatchSize ?? 1000;
    this.cleanupIntervalMs = options.cleanupIntervalMs ?? 3_600_000;
  }

  private readonly cleanupIntervalMs: number;
  /** When this inbox last started a cleanup (0: never). */
  private lastCleanup = 0;

  /**
   * Starts a background cleanup of `db` when this inbox's last one is older than the interval;
   * never throws, never waits. (An inbox used with several databases cleans whichever comes
   * through; call `cleanup(db)` for each of them yourself.)
   */
  private cleanupNowAndThen(db: Executor): void {
    if (this.cleanupIntervalMs <= 0) return;
    const now = Date.now();
    if (now - this.lastCleanup < this.cleanupIntervalMs) return;
    this.lastCleanup = now;
    // A failed cleanup is tried again at the next interval; the messages' handling is unaffected.
    this.cleanup(db).catch(() => undefined);
  }

  /**
   * Applies `message` once: runs `fn(tx)` in a transaction of `db` (a root executor, not a
   * transaction: the failure is written outside the rolled-back one) together with the record.
   */
  async handle<T>(db: Executor, message: InboxMessage, fn: (tx: Executor) => Promise<T>): Promise<InboxOutcome<T>> {
    this.cleanupNowAndThen(db);
    try {
      return await db.transaction(async (tx): Promise<InboxOutcome<T>> => {
        if (!(await this.claim(tx, message))) return { status: "duplicate" };
        const value = await fn(tx);
        return { status: "applied", value };
      });
    } catch (error) {
      const text = (error instanceof Error ? (error.stack ?? error.message) : String(error)).slice(0, ERROR_TEXT_LIMIT);
      await recordFailure(db, this.consumer, message, text).catch(() => undefined);
      throw error;
    }
  }

  /** Takes the record for this transaction; false when the message was applied before. */
  private async claim(tx: Executor, message: InboxMessage): Promise<boolean> {
    // PostgreSQL: one INSERT ... RETURNING claims a new message (the common case).
    if (dialectOf(tx.dialect).returning && (await insertApplied(tx, this.consumer, message))) return true;
    if (!dialectOf(tx.dialect).returning) await insertReceived(tx, this.consumer, message);
    const status = await lockStatus(tx, this.consumer, message.id);
    if (status === "applied") return false;
    await markApplied(tx, this.consumer, message.id);
    return true;
  }

  /** The record of one message, or null. */
  get(db: Executor, id: string): Promise<InboxRecord | null> {
    return getRecord(db, this.consumer, id);
  }

  /** Records by status, most recently changed first (failed ones: what still needs a look). */
  list(db: Executor, status: InboxStatus, limit = 100): Promise<InboxRecord[]> {
    return listRecords(db, this.consumer, status, limit);
  }

  /** The status of each of `ids` (full ids) this consumer has a record of: one query, for a page of a reconciliation. */
  statusesOf(db: Executor, ids: readonly string[]): Promise<Map<string, InboxStatus>> {
    return statusesOf(db, this.consumer, ids);
  }

  counts(db: Executor): Promise<Record<InboxStatus, number>> {
    return countRecords(db, this.consumer);
  }

  /** Deletes records past the retention period, in batches. */
  async cleanup(db: Executor): Promise<void> {
    while (await deleteOldBatch(db, this.consumer, this.retentionMs, this.cleanupBatchSize)) {
      // until a batch finds nothing more
    }
  }
}
