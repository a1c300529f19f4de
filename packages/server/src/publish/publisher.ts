import type { Logger } from "pino";
import { conflict } from "../domain/errors.ts";
import { localId } from "../domain/messageIds.ts";
import type { Db } from "../store/db.ts";
import { inTransaction } from "../store/db.ts";
import type { LeasedDelivery } from "../store/deliveryOps.ts";
import { insertMessages, type CreatedDelivery, type InsertOutcome, type NewMessage } from "../store/insertMessages.ts";
import { outgoingOf, type MessageRecord, type OutgoingMessage } from "../store/rows.ts";
import { commitPrepared, rollbackPrepared, type ResolveOutcome, type SettleRequest } from "../store/transactional.ts";
import { Combiner } from "./combiner.ts";

export interface PublisherDeps {
  db: Db;
  nodeId: string;
  leaseMs: number;
  log: Logger;
  /** Whether the dispatcher can take more work from memory now. */
  canDispatch(): boolean;
  dispatch(deliveries: LeasedDelivery[]): void;
  accepted(count: number): void;
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
  private readonly inserts = new Combiner<NewMessage, InsertOutcome>((messages) => this.write(messages), MAX_COMBINED, MAX_WRITES_IN_FLIGHT);
  private readonly commits = new Combiner<SettleRequest, ResolveOutcome>((items) => this.writeCommits(items), MAX_COMBINED, MAX_WRITES_IN_FLIGHT);

  constructor(private readonly deps: PublisherDeps) {}

  publish(message: NewMessage): Promise<InsertOutcome> {
    return this.inserts.push(message);
  }

  private async write(messages: NewMessage[]): Promise<InsertOutcome[]> {
    // A single statement is atomic on its own: no begin/commit round trips needed.
    const { outcomes, deliveries } = await insertMessages(this.deps.db, this.owner(), this.deps.leaseMs, messages);
    this.afterCommit(outcomes, deliveries, true, messages);
    return outcomes;
  }

  /**
   * Stores a batch. Atomic (the default): all or nothing, and any id stored before with other
   * content fails the whole batch with 409. Not atomic: each message stands alone, and the
   * outcomes say which were created, already there, or in conflict — so a relay does not have to
   * split a batch to find the one refused message.
   */
  async publishBatch(messages: NewMessage[], atomic = true): Promise<InsertOutcome[]> {
    if (!atomic) {
      // One statement: atomic by itself, and no message of it fails another.
      const { outcomes, deliveries } = await insertMessages(this.deps.db, this.owner(), this.deps.leaseMs, messages);
      this.afterCommit(outcomes, deliveries, true, messages);
      return outcomes;
    }
    const { outcomes, deliveries } = await inTransaction(this.deps.db, async (tx) => {
      const result = await insertMessages(tx, this.owner(), this.deps.leaseMs, messages);
      const clash = result.outcomes.findIndex((o) => o.kind === "conflict");
      if (clash >= 0) {
        const id = localId(messages[clash]!.id);
        throw conflict(`message ${id} was stored before with other content`, { index: clash, id });
      }
      return result;
    });
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
      leased.push({ deliveryId: d.deliveryId, subscriptionId: d.subscriptionId, attempt: 1, attemptInCycle: 1, firstAttemptAt: null, message });
    }
    if (leased.length > 0) this.deps.dispatch(leased);
  }
}
