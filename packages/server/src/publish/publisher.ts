import type { Logger } from "pino";
import { conflict } from "../domain/errors.ts";
import type { Db } from "../store/db.ts";
import { inTransaction } from "../store/db.ts";
import type { LeasedDelivery } from "../store/deliveryOps.ts";
import { insertMessages, type CreatedDelivery, type InsertOutcome, type NewMessage } from "../store/insertMessages.ts";
import { outgoingOf, type MessageRecord, type OutgoingMessage } from "../store/rows.ts";
import { commitPrepared, rollbackPrepared, type ResolveOutcome } from "../store/transactional.ts";

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

interface Waiting {
  message: NewMessage;
  resolve(outcome: InsertOutcome): void;
  reject(error: unknown): void;
}

/** Messages per combined statement; the batch API's own limit. */
const MAX_COMBINED = 1000;
/**
 * Combined writes in flight at once. Requests that arrive while these run wait and go
 * together in the next statement, so under load one commit serves many callers.
 */
const MAX_WRITES_IN_FLIGHT = 4;

/**
 * Stores messages. Concurrent single-message calls are gathered into one statement (a commit
 * is the expensive part); each caller is answered only after the statement holding its
 * message committed. Deliveries created due now are dispatched at once from memory.
 */
export class Publisher {
  private waiting: Waiting[] = [];
  private writes = 0;

  constructor(private readonly deps: PublisherDeps) {}

  publish(message: NewMessage): Promise<InsertOutcome> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ message, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    while (this.writes < MAX_WRITES_IN_FLIGHT && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, MAX_COMBINED);
      this.writes++;
      void this.write(batch).finally(() => {
        this.writes--;
        this.next();
      });
    }
  }

  private async write(batch: Waiting[]): Promise<void> {
    try {
      // A single statement is atomic on its own: no begin/commit round trips needed.
      const messages = batch.map((w) => w.message);
      const { outcomes, deliveries } = await insertMessages(this.deps.db, this.owner(), this.deps.leaseMs, messages);
      this.afterCommit(outcomes, deliveries, true, messages);
      batch.forEach((w, i) => w.resolve(outcomes[i]!));
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
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
        throw conflict(`message ${messages[clash]!.id} was stored before with other content`, { index: clash, id: messages[clash]!.id });
      }
      return result;
    });
    this.afterCommit(outcomes, deliveries, true, messages);
    return outcomes;
  }

  /** Commits a prepared message: its deliveries are created and dispatched at once. */
  async commit(id: string): Promise<ResolveOutcome> {
    const outcome = await commitPrepared(this.deps.db, id, this.owner(), this.deps.leaseMs);
    if (outcome.kind === "resolved") {
      const message = outcome.message;
      this.afterCommit([{ kind: "created", message }], outcome.deliveries, false);
    }
    return outcome;
  }

  rollback(id: string): Promise<ResolveOutcome> {
    return rollbackPrepared(this.deps.db, id);
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
        message = text ? outgoingOf(record, text.payloadJson, text.headersJson) : outgoingOf(record);
        outgoing.set(record.id, message);
      }
      leased.push({ deliveryId: d.deliveryId, subscriptionId: d.subscriptionId, attempt: 1, attemptInCycle: 1, firstAttemptAt: null, message });
    }
    if (leased.length > 0) this.deps.dispatch(leased);
  }
}
