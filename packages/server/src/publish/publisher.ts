import type { Logger } from "pino";
import type { LeasedDelivery } from "../domain/delivery.ts";
import { conflict, fieldOfRefusal, TidingsError } from "../domain/errors.ts";
import { outgoingOf, type MessageRecord, type OutgoingMessage } from "../domain/message.ts";
import { localId } from "../domain/messageIds.ts";
import type { Db, Tx } from "../store/db.ts";
import { inTransaction, isDataError } from "../store/db.ts";
import type { CreatedDelivery } from "../store/fanOut.ts";
import type { NewMessage } from "../domain/newMessage.ts";
import { insertMessages, type InsertOutcome } from "../store/insertMessages.ts";
import { commitPrepared, rollbackPrepared, type ResolveOutcome, type SettleRequest } from "../store/preparedMessages.ts";
import { Combiner } from "./combiner.ts";

export interface PublisherDeps {
  db: Db;
  nodeId: string;
  leaseMs: number;
  log: Logger;
  /** Whether the dispatcher can take more work from memory now. */
  canDispatch(): boolean;
  dispatch(deliveries: LeasedDelivery[]): void;
  /** Some deliveries were created unleased (left to a claim): e.g. a keyed message of an ordered subscription. */
  unleased?(): void;
  accepted(count: number): void;
  /** Single messages waiting to be combined at most (count, and payload bytes); more get 503. */
  maxWaiting?: number;
  maxWaitingBytes?: number;
}

/** What became of one message of a batch: stored (or there already), or refused on its own. */
export type BatchOutcome = InsertOutcome | { kind: "invalid"; error: TidingsError };

/** A message the database refused (a safety net behind the checks before storing): a 400 naming the likely field. */
function refused(error: unknown, prefix: string): TidingsError {
  const text = error instanceof Error ? error.message : String(error);
  const field = `${prefix}${fieldOfRefusal(text)}`;
  return new TidingsError("invalid_request", `${field} was refused by the database: ${text}`, field, { cause: error });
}

/** Messages per combined statement; the batch API's own limit. */
const MAX_COMBINED = 1000;
/**
 * Combined writes in flight at once (group commit). Requests that arrive while one runs wait
 * and go together in the next statement, so under load one commit serves many callers, and
 * the batches grow with the load. One at a time measured cheapest on the 2-core reference box:
 * publish-single 9.5k msg/s against 7.3k with four in flight (service + PostgreSQL CPU per
 * message 0.115 against 0.169 ms), transactional 1,124 against 925 tx/s (docs/performance.md).
 */
const MAX_WRITES_IN_FLIGHT = 1;

/**
 * Stores messages. Concurrent single-message calls are gathered into one statement (a commit
 * is the expensive part); each caller is answered only after the statement holding its
 * message committed. Deliveries created due now are dispatched at once from memory. Commits of
 * prepared messages are gathered the same way.
 */
export class Publisher {
  private readonly inserts: Combiner<NewMessage, InsertOutcome>;
  private readonly commits: Combiner<SettleRequest, ResolveOutcome>;

  constructor(private readonly deps: PublisherDeps) {
    const limits = {
      maxWaiting: deps.maxWaiting ?? 10_000,
      maxWaitingBytes: deps.maxWaitingBytes ?? 32 * 1_048_576,
      isItemError: isDataError,
    };
    this.inserts = new Combiner((messages) => this.write(messages), MAX_COMBINED, MAX_WRITES_IN_FLIGHT, limits);
    this.commits = new Combiner((items) => this.writeCommits(items), MAX_COMBINED, MAX_WRITES_IN_FLIGHT, limits);
  }

  /** Stores one message (combined with concurrent ones); `bytes`: its size, for the waiting limit. */
  publish(message: NewMessage, bytes = 0): Promise<InsertOutcome> {
    return this.inserts.push(message, bytes);
  }

  private async write(messages: NewMessage[]): Promise<InsertOutcome[]> {
    // A single statement is atomic on its own: no begin/commit round trips needed.
    const { outcomes, deliveries } = await this.insert(this.deps.db, messages);
    this.afterCommit(outcomes, deliveries, true, messages);
    return outcomes;
  }

  /** insertMessages, with the database's refusal of a lone message's content turned into a 400. */
  private async insert(db: Db | Tx, messages: readonly NewMessage[], prefix = "") {
    try {
      return await insertMessages(db, this.owner(), this.deps.leaseMs, messages);
    } catch (error) {
      if (messages.length === 1 && isDataError(error)) throw refused(error, prefix);
      throw error;
    }
  }

  /** Not atomic: the batch in one statement; if the database refuses it, in halves, so that only the culprits fail. */
  private async insertEach(messages: readonly NewMessage[], prefixes: readonly string[]): Promise<BatchOutcome[]> {
    try {
      const { outcomes, deliveries } = await this.insert(this.deps.db, messages, prefixes[0]);
      this.afterCommit(outcomes, deliveries, true, messages);
      return outcomes;
    } catch (error) {
      if (messages.length === 1 && error instanceof TidingsError && error.code === "invalid_request") return [{ kind: "invalid", error }];
      if (messages.length === 1 || !isDataError(error)) throw error;
      const half = Math.ceil(messages.length / 2);
      return [
        ...(await this.insertEach(messages.slice(0, half), prefixes.slice(0, half))),
        ...(await this.insertEach(messages.slice(half), prefixes.slice(half))),
      ];
    }
  }

  /**
   * An atomic batch the database refused: the first message it refuses alone (each tried in a
   * savepoint of a transaction that is rolled back), as a 400 naming it.
   */
  private async culprit(messages: readonly NewMessage[], cause: unknown): Promise<TidingsError> {
    const client = await this.deps.db.connect();
    try {
      await client.query("begin");
      for (let i = 0; i < messages.length; i++) {
        await client.query("savepoint probe");
        try {
          await insertMessages(client, null, this.deps.leaseMs, [messages[i]!]);
        } catch (error) {
          if (isDataError(error)) return refused(error, `messages[${i}].`);
          throw error;
        }
        await client.query("rollback to savepoint probe");
      }
      return refused(cause, "");
    } finally {
      await client.query("rollback").catch(() => {});
      client.release();
    }
  }

  /**
   * Stores a batch. Atomic (the default): all or nothing, and any id stored before with other
   * content fails the whole batch with 409. Not atomic: each message stands alone, and the
   * outcomes say which were created, already there, or in conflict — so a relay does not have to
   * split a batch to find the one refused message.
   */
  async publishBatch(messages: NewMessage[], atomic = true, prefixes: readonly string[] = messages.map((_, i) => `messages[${i}].`)): Promise<BatchOutcome[]> {
    if (!atomic) {
      // One statement: atomic by itself, and no message of it fails another.
      return this.insertEach(messages, prefixes);
    }
    let result: Awaited<ReturnType<typeof insertMessages>>;
    try {
      result = await inTransaction(this.deps.db, async (tx) => {
        const inserted = await insertMessages(tx, this.owner(), this.deps.leaseMs, messages);
        const clash = inserted.outcomes.findIndex((o) => o.kind === "conflict");
        if (clash >= 0) {
          const id = localId(messages[clash]!.id);
          throw conflict(`message ${id} was stored before with other content`, { index: clash, id });
        }
        return inserted;
      });
    } catch (error) {
      if (!isDataError(error)) throw error;
      throw await this.culprit(messages, error);
    }
    const { outcomes, deliveries } = result;
    this.afterCommit(outcomes, deliveries, true, messages);
    return outcomes;
  }

  /**
   * Commits a prepared message of `app` (null: any, for the admin): its deliveries are created
   * and dispatched at once. Concurrent commits go together in one statement.
   */
  commit(id: string, app: string | null = null): Promise<ResolveOutcome> {
    return this.commits.push({ id, app });
  }

  private async writeCommits(items: SettleRequest[]): Promise<ResolveOutcome[]> {
    const { outcomes, deliveries } = await commitPrepared(this.deps.db, items, this.owner(), this.deps.leaseMs);
    const committed = outcomes.flatMap((o): InsertOutcome[] => (o.kind === "resolved" ? [{ kind: "created", message: o.message }] : []));
    if (committed.length > 0) this.afterCommit(committed, deliveries, false);
    return outcomes;
  }

  /** Rolls a prepared message of `app` (null: any) back. */
  rollback(id: string, app: string | null = null): Promise<ResolveOutcome> {
    return rollbackPrepared(this.deps.db, { id, app });
  }

  /** null when the dispatcher is backed up: then deliveries are left for the poller, unleased. */
  private owner(): string | null {
    return this.deps.canDispatch() ? this.deps.nodeId : null;
  }

  /**
   * Hands the deliveries leased to this node to the dispatcher, with the message it already
   * holds. `sent` are the messages as requested, whose payload JSON text is reused as is.
   */
  private afterCommit(outcomes: InsertOutcome[], deliveries: CreatedDelivery[], count = true, sent: readonly NewMessage[] = []): void {
    const created = new Map<string, MessageRecord>();
    for (const o of outcomes) if (o.kind === "created") created.set(o.message.id, o.message);
    if (count && created.size > 0) this.deps.accepted(created.size);
    if (deliveries.length === 0) return;
    const texts = new Map<string, NewMessage>();
    for (const m of sent) texts.set(m.id, m);
    const outgoing = new Map<string, OutgoingMessage>();
    const leased: LeasedDelivery[] = [];
    for (const d of deliveries) {
      const record = created.get(d.messageId);
      if (!d.leased || !record) continue;
      let message = outgoing.get(record.id);
      if (!message) {
        const text = texts.get(record.id);
        message = outgoingOf(record, text?.payloadJson, text?.headersJson);
        outgoing.set(record.id, message);
      }
      leased.push({
        deliveryId: d.deliveryId,
        messageDay: d.messageDay,
        subscriptionId: d.subscriptionId,
        attempt: 1,
        attemptInCycle: 1,
        firstAttemptAt: null,
        message,
      });
    }
    if (leased.length > 0) this.deps.dispatch(leased);
    if (leased.length < deliveries.length) this.deps.unleased?.();
  }
}
