import type { CheckAfter, MessageInfo } from "../client/apiTypes.ts";
import { resolveMessage, type OutgoingMessage, type ResolvedMessage } from "../domain/message.ts";
import { TidingsError } from "../errors.ts";
import { isUniqueViolation } from "../executor/dialect.ts";
import type { Executor, TransactionOptions } from "../executor/executor.ts";
import { activeTrace } from "../tracing/otel.ts";
import { barrierError, commitBarrierSql, databaseIdentity, decide, DEFAULT_LOCK_TIMEOUT_MS, insertCommitBarrier, type CheckAnswer } from "./barrier.ts";

/** What the callback of `transaction()` gets besides its transaction. */
export interface TransactionContext {
  /** The message's id (the one given, or the UUIDv7 generated for it). */
  readonly messageId: string;
}

/** The business change: runs in the local transaction `tx`, which also holds the message's barrier row. */
export type TransactionCallback<T> = (tx: Executor, context: TransactionContext) => Promise<T>;

/** What became of a transactional message, for logs and metrics (an exception thrown by the observer is ignored). */
export type TransactionEvent =
  /** The local transaction and the message are both committed. */
  | { type: "committed"; id: string }
  /** The local transaction did not commit and the message is rolled back. */
  | { type: "rolled_back"; id: string; error: unknown }
  /** The local transaction committed but committing the message failed (network, service down): the check-back will commit it. */
  | { type: "commit_deferred"; id: string; error: unknown }
  /** The local transaction did not commit but rolling the message back failed: the check-back will roll it back. */
  | { type: "rollback_deferred"; id: string; error: unknown }
  /** The local transaction failed and its outcome could not be settled now (database unreachable, or the key still locked): the check-back will. */
  | { type: "outcome_unknown"; id: string; error: unknown };

/** Defaults for every `transaction()` call of a client (`new TidingsClient({ ..., transactions })`). */
export interface TransactionDefaults {
  /** How long the service waits before checking the message back; default: the service's (10 s). */
  checkAfter?: CheckAfter;
  /**
   * How long settling an outcome waits for a transaction still holding the message's barrier
   * key before saying unknown; default 5000 ms (whole seconds on MySQL). Used by the check-back
   * handler and by `transaction()` after its local commit failed.
   */
  lockTimeoutMs?: number;
  onEvent?: (event: TransactionEvent) => void;
  /**
   * How often `transaction()` deletes old intent and barrier rows of its database in the
   * background; default 1 hour; 0: never (call `cleanupBarriers(db)` yourself). Client-wide only.
   */
  cleanupIntervalMs?: number;
  /**
   * Intent and barrier rows older than this are deleted; default 7 days. Keep it far longer than
   * the service's last check-back (TIDINGS_CHECK_AFTER + TIDINGS_CHECK_INTERVAL × TIDINGS_CHECK_LIMIT,
   * 7.7 minutes by default): a check that finds no row would roll a committed transaction's
   * message back. Client-wide only.
   */
  barrierRetentionMs?: number;
  /**
   * Send the prepares and the message commits of concurrent `transaction()` calls together
   * (`POST /v1/messages/batch`, `POST /v1/messages/commit`) while one of the kind is on its way;
   * default true. A lone transaction's calls go out at once either way. false: one request per
   * call (`POST /v1/messages`, `/v1/messages/:id/commit`). Client-wide only.
   */
  combineCalls?: boolean;
}

export interface TransactionCallOptions extends TransactionDefaults {
  /** Isolation level of the local transaction; default: the database's. */
  isolation?: TransactionOptions["isolation"];
}

/** The calls of the message API that `transaction()` makes (the client's; concurrent ones combined unless `combineCalls: false`). */
export interface TransactionMessages {
  /** Prepares `message`; `checkContext` (the database's identity) must reach the service, which sends it back in each check-back. */
  prepare(message: ResolvedMessage, checkAfter: CheckAfter | undefined, checkContext: string): Promise<MessageInfo>;
  commit(id: string): Promise<unknown>;
  rollback(id: string): Promise<unknown>;
}

/**
 * The half-message protocol on the producer's side (see `TidingsClient.transaction`):
 *
 * 1. prepare the message (idempotent by id, retried) with this database's identity as its check
 *    context: the service sends it back in each check-back, and the check-back handler answers
 *    only for messages carrying its own database's identity (read once per executor);
 * 2. local transaction: the 'commit' barrier row first, then `fn`; commit;
 * 3. commit the message.
 *
 * The message is only ever moved to the state a committed barrier row says: committed after
 * our local commit (which carries the 'commit' row), rolled back only after `decide` put a
 * 'rollback' row in (which no local transaction can get past). A crash anywhere leaves it
 * prepared, and the service's check-back asks `decide` the same question.
 */
export async function runTransaction<T>(
  messages: TransactionMessages,
  db: Executor,
  message: OutgoingMessage,
  fn: TransactionCallback<T>,
  options: TransactionCallOptions = {},
): Promise<T> {
  const resolved = resolveMessage(message);
  // Prepared in the caller's trace: the check-back and the deliveries continue it.
  resolved.trace = await activeTrace();
  const id = resolved.id;
  const lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const emit = (event: TransactionEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // observers never break a transaction
    }
  };

  const prepared = await messages.prepare(resolved, options.checkAfter, await databaseIdentity(db));
  if (prepared.state !== "prepared") {
    throw new TidingsError("conflict", `message ${id} is already ${prepared.state}: each transaction needs a message id of its own`, {
      details: { state: prepared.state },
    });
  }

  let value: T | undefined;
  let ranToCommit = false;
  let barrierRefused = false;
  const txOptions = options.isolation ? { isolation: options.isolation } : undefined;
  let callbackStarted = false;
  const local = async (tx: Executor) => {
    callbackStarted = true;
    value = await fn(tx, { messageId: id });
    ranToCommit = true;
  };
  try {
    try {
      if (db.transactionFrom && db.dialect === "postgres") {
        // The barrier row goes with BEGIN in one round trip.
        await db.transactionFrom(commitBarrierSql(id), local, txOptions);
      } else {
        await db.transaction(async (tx) => {
          await insertCommitBarrier(tx, id);
          await local(tx);
        }, txOptions);
      }
    } catch (error) {
      if (callbackStarted) throw error;
      // Before the callback started, a unique violation can only be the barrier's.
      barrierRefused = isUniqueViolation(error);
      throw barrierError(error);
    }
  } catch (error) {
    // The callback threw, the barrier insert was refused, or COMMIT failed (perhaps after it
    // took effect: a lost reply). Settle it the way the check-back would.
    let outcome: CheckAnswer;
    try {
      outcome = await decide(db, id, lockTimeoutMs);
    } catch (decideError) {
      emit({ type: "outcome_unknown", id, error: decideError });
      throw error;
    }
    if (outcome === "unknown") {
      emit({ type: "outcome_unknown", id, error });
      throw error;
    }
    if (outcome === "rollback") {
      await rollbackMessage(messages, id, error, emit);
      if (barrierRefused) {
        throw new TidingsError("conflict", `message ${id} was rolled back by a check-back before its local transaction began; nothing was committed`, {
          cause: error,
          details: { state: "rolled_back" },
        });
      }
      throw error;
    }
    // outcome === "commit"
    if (!ranToCommit) {
      // Our callback never finished, so that commit row is another transaction's with the same id.
      throw new TidingsError("conflict", `message id ${id} was used by another transaction, which committed; this one did not`, {
        cause: error,
        details: { state: "committed" },
      });
    }
    // COMMIT reported an error but took effect: carry on as if it had answered.
  }

  try {
    await messages.commit(id);
  } catch (error) {
    if (error instanceof TidingsError && !error.retryable) {
      // Only a person can have done this (a hand rollback of a message in doubt): say so loudly.
      throw new TidingsError("conflict", `the local transaction of message ${id} committed, but the service refused to commit the message: ${error.message}`, {
        cause: error,
        status: error.status,
        details: error.details,
      });
    }
    emit({ type: "commit_deferred", id, error });
    return value as T;
  }
  emit({ type: "committed", id });
  return value as T;
}

async function rollbackMessage(messages: TransactionMessages, id: string, cause: unknown, emit: (event: TransactionEvent) => void): Promise<void> {
  try {
    await messages.rollback(id);
    emit({ type: "rolled_back", id, error: cause });
  } catch (error) {
    emit({ type: "rollback_deferred", id, error });
  }
}
