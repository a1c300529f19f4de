import { TidingsClient } from "../client/client.ts";
import type { HttpOptions } from "../client/http.ts";
import { resolveMessage, type OutgoingMessage } from "../domain/message.ts";
import { TidingsError } from "../errors.ts";
import type { Executor } from "../executor/executor.ts";
import { countByStatus, getByIds, insertOutbox, listFailed, retryFailed, type OutboxRow, type OutboxStatus } from "./outboxQueries.ts";
import { Relay, type RelayOptions } from "./relay.ts";
import { activeTrace } from "../tracing/otel.ts";

export interface OutboxOptions extends RelayOptions {
  /** The database the relay, cleanup and queries use (the same one `add` writes to). */
  db?: Executor;
  /** The service, for the relay: a client, or its url and API key. */
  tidings?: TidingsClient | HttpOptions;
  /** NOTIFY the relay on commit (PostgreSQL); default true. */
  notify?: boolean;
}

/** Rows per INSERT statement when adding many messages. */
const INSERT_CHUNK = 1000;

/**
 * The transactional outbox: `add` writes messages into the local `tidings_outbox` table inside
 * the caller's own transaction, so they exist exactly when the business change commits; the
 * relay (`start()` in-process, or the `tidings relay` sidecar) ships them to the service.
 */
export class Outbox {
  private relay: Relay | null = null;
  private readonly notify: boolean;

  constructor(private readonly options: OutboxOptions = {}) {
    this.notify = options.notify ?? true;
  }

  /**
   * Adds messages in the transaction `tx` (an executor of the user's open transaction). Resolves
   * to the message id(s). Nothing is sent unless that transaction commits.
   */
  add(tx: Executor, message: OutgoingMessage): Promise<string>;
  add(tx: Executor, messages: readonly OutgoingMessage[]): Promise<string[]>;
  async add(tx: Executor, input: OutgoingMessage | readonly OutgoingMessage[]): Promise<string | string[]> {
    const list = Array.isArray(input) ? (input as readonly OutgoingMessage[]) : [input as OutgoingMessage];
    const now = Date.now();
    const resolved = list.map((m, i) => resolveMessage(m, now, Array.isArray(input) ? `[${i}].` : ""));
    // Each row keeps the trace it was added in: the relay sends it, so the deliveries continue the producer's trace.
    const trace = await activeTrace();
    if (trace) for (const m of resolved) m.trace = trace;
    for (let i = 0; i < resolved.length; i += INSERT_CHUNK) {
      await insertOutbox(tx, resolved.slice(i, i + INSERT_CHUNK), this.notify);
    }
    const ids = resolved.map((m) => m.id);
    return Array.isArray(input) ? ids : ids[0]!;
  }

  /** Starts the relay in this process. */
  async start(): Promise<void> {
    this.relay ??= new Relay(this.db(), this.client(), this.options);
    await this.relay.start();
  }

  /** Stops the in-process relay, waiting for the batch in flight. */
  async stop(): Promise<void> {
    await this.relay?.stop();
  }

  /** Sends one batch now (without starting the relay); resolves to how many rows it handled. */
  relayOnce(): Promise<number> {
    this.relay ??= new Relay(this.db(), this.client(), this.options);
    return this.relay.relayOnce();
  }

  /** Rows the relay gave up on (after max attempts, or refused by the service), oldest first. */
  failed(limit = 100): Promise<OutboxRow[]> {
    return listFailed(this.db(), limit);
  }

  /** Outbox rows by message id. */
  get(ids: readonly string[]): Promise<OutboxRow[]> {
    return getByIds(this.db(), ids);
  }

  /** Puts failed rows (these ids, or all) back to be sent; resolves to how many. */
  async retry(ids?: readonly string[]): Promise<number> {
    const n = await retryFailed(this.db(), ids);
    this.relay?.wake();
    return n;
  }

  /** Row counts by status. */
  counts(): Promise<Record<OutboxStatus, number>> {
    return countByStatus(this.db());
  }

  /** Deletes sent rows past the retention period now (the relay also does it on its timer). */
  cleanup(): Promise<void> {
    this.relay ??= new Relay(this.db(), this.client(), this.options);
    return this.relay.cleanup();
  }

  private db(): Executor {
    if (!this.options.db) throw new TidingsError("config", "this needs the outbox's database: new Outbox({ db, ... })");
    return this.options.db;
  }

  private client(): TidingsClient {
    const t = this.options.tidings;
    if (!t) throw new TidingsError("config", "the relay needs the service: new Outbox({ tidings: { url, apiKey } })");
    return t instanceof TidingsClient ? t : new TidingsClient({ retries: 0, ...t });
  }
}
