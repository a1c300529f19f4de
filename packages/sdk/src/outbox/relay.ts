import type { BatchOutcomes } from "../client/apiTypes.ts";
import type { TidingsClient } from "../client/client.ts";
import { backoffDelayMs, DEFAULT_BACKOFF, type BackoffPolicy } from "../domain/backoff.ts";
import { TidingsError } from "../errors.ts";
import type { Executor, Listening } from "../executor/executor.ts";
import { defaultRelayName, RELAY_NAME, RelayHeartbeat } from "./relayHeartbeat.ts";
import { claimDue, deleteSentBatch, inKeyOrder, markFailed, markRetry, markSent, OUTBOX_CHANNEL, type OutboxRow } from "./outboxQueries.ts";

export interface RelayOptions {
  /** Rows per claim and per batch call; default 500 (the batch API takes up to 1000). */
  batchSize?: number;
  /** Batches in flight at once; default 1. */
  concurrency?: number;
  /**
   * The compensation scan: how often due rows are looked for without a wake-up. Default 1 s
   * where the database can LISTEN (PostgreSQL), else 200 ms (MySQL: this *is* the wake-up).
   */
  pollIntervalMs?: number;
  /** Sends before a row is marked failed; default 25 (about 1.5 h with the default backoff). */
  maxAttempts?: number;
  backoff?: BackoffPolicy;
  /** Sent rows are deleted this long after they were sent; default 7 days. */
  retentionMs?: number;
  /** How often cleanup runs; default 1 h. 0 turns it off. */
  cleanupIntervalMs?: number;
  /** Rows deleted per cleanup statement; default 1000. */
  cleanupBatchSize?: number;
  /** Observes what the relay does; an exception thrown here is ignored. */
  onEvent?: (event: RelayEvent) => void;
  /** The relay's name in its heartbeats, unique within its app; default `<host>:<pid>`. */
  name?: string;
  /**
   * How often the relay reports its counts to the service (`POST /v1/relays/heartbeat`: waiting
   * and failed rows, the oldest waiting row's age, when it last shipped); default 10 s, 0: never.
   */
  heartbeatIntervalMs?: number;
  /** The app the relay ships for, when its client holds the admin key (an app's key names its app). */
  app?: string;
}

export type RelayEvent =
  | { type: "sent"; ids: string[] }
  | { type: "retry"; ids: string[]; error: string; delayMs: number }
  | { type: "failed"; ids: string[]; error: string }
  | { type: "error"; error: unknown }
  /** A heartbeat's outcome: `error` null when the service took it. It never affects the relay's work. */
  | { type: "heartbeat"; error: unknown | null };

export interface ResolvedRelayOptions {
  readonly batchSize: number;
  readonly concurrency: number;
  readonly pollIntervalMs: number | null;
  readonly maxAttempts: number;
  readonly backoff: BackoffPolicy;
  readonly retentionMs: number;
  readonly cleanupIntervalMs: number;
  readonly cleanupBatchSize: number;
  readonly onEvent: (event: RelayEvent) => void;
  readonly name: string;
  readonly heartbeatIntervalMs: number;
  readonly app: string | undefined;
}

const DAY = 86_400_000;

function positive(name: string, value: number | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0 || value > max) throw new TidingsError("config", `${name} must be an integer from 0 to ${max}, got ${value}`);
  return value;
}

export function resolveRelayOptions(o: RelayOptions = {}): ResolvedRelayOptions {
  return {
    batchSize: Math.max(1, positive("batchSize", o.batchSize, 500, 1000)),
    concurrency: Math.max(1, positive("concurrency", o.concurrency, 1, 64)),
    pollIntervalMs: o.pollIntervalMs === undefined ? null : Math.max(10, positive("pollIntervalMs", o.pollIntervalMs, 1000)),
    maxAttempts: Math.max(1, positive("maxAttempts", o.maxAttempts, 25)),
    backoff: o.backoff ?? DEFAULT_BACKOFF,
    retentionMs: positive("retentionMs", o.retentionMs, 7 * DAY),
    cleanupIntervalMs: positive("cleanupIntervalMs", o.cleanupIntervalMs, 3_600_000),
    cleanupBatchSize: Math.max(1, positive("cleanupBatchSize", o.cleanupBatchSize, 1000)),
    onEvent: (event) => {
      try {
        o.onEvent?.(event);
      } catch {
        // observers never break the relay
      }
    },
    name: relayName(o.name),
    heartbeatIntervalMs: o.heartbeatIntervalMs === 0 ? 0 : Math.max(100, positive("heartbeatIntervalMs", o.heartbeatIntervalMs, 10_000, 86_400_000)),
    app: o.app,
  };
}

function relayName(name: string | undefined): string {
  if (name === undefined) return defaultRelayName();
  if (!RELAY_NAME.test(name))
    throw new TidingsError("config", `name must be 1-128 letters, digits or _ . : @ - (starting with a letter or digit), got "${name}"`);
  return name;
}

/** The service refused these messages for good: sending them again would fail the same way. */
function isPermanent(error: unknown): boolean {
  return error instanceof TidingsError && ["invalid_request", "invalid_message", "conflict", "payload_too_large"].includes(error.code);
}

/** The index of the message a whole-batch refusal names (`messages[3].key`), if it names one. */
function culpritIndex(error: unknown, count: number): number | null {
  const match = error instanceof TidingsError && error.field ? /^messages\[(\d+)\]/.exec(error.field) : null;
  const index = match ? Number(match[1]) : -1;
  return index >= 0 && index < count ? index : null;
}

function describe(error: unknown): string {
  return (error instanceof Error ? `${error instanceof TidingsError ? `${error.code}: ` : ""}${error.message}` : String(error)).slice(0, 1000);
}

/**
 * Ships committed outbox rows to the service. Each batch is claimed with FOR UPDATE SKIP LOCKED
 * and stays locked while it is sent and marked in the same transaction, so concurrent relays
 * never take the same rows, and rows of a relay that dies (SIGKILL included) are unlocked by the
 * database at once and sent by the next relay. A send whose answer was lost is simply sent again:
 * the message id makes it idempotent at the service.
 */
export class Relay {
  private readonly o: ResolvedRelayOptions;
  private started = false;
  private workers = 0;
  private wanted = false;
  private readonly idle: Array<() => void> = [];
  private listening: Listening | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private cleanupTimer: NodeJS.Timeout | null = null;
  private readonly heartbeat: RelayHeartbeat | null;

  constructor(
    private readonly db: Executor,
    private readonly client: TidingsClient,
    options: RelayOptions = {},
  ) {
    this.o = resolveRelayOptions(options);
    this.heartbeat =
      this.o.heartbeatIntervalMs > 0
        ? new RelayHeartbeat(db, client, {
            name: this.o.name,
            app: this.o.app,
            intervalMs: this.o.heartbeatIntervalMs,
            onResult: (error) => this.o.onEvent({ type: "heartbeat", error }),
          })
        : null;
  }

  /** Starts relaying: LISTEN where possible, the compensation scan, cleanup. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    let poll = this.o.pollIntervalMs;
    if (this.db.listen) {
      try {
        this.listening = await this.db.listen(
          OUTBOX_CHANNEL,
          () => this.wake(),
          (error) => this.relisten(error),
        );
        poll ??= 1000;
      } catch (error) {
        this.o.onEvent({ type: "error", error });
      }
    }
    poll ??= 200;
    this.pollTimer = setInterval(() => this.wake(), poll);
    if (this.o.cleanupIntervalMs > 0) {
      this.cleanupTimer = setInterval(() => void this.cleanup().catch((error) => this.o.onEvent({ type: "error", error })), this.o.cleanupIntervalMs);
      this.cleanupTimer.unref();
    }
    this.heartbeat?.start();
    this.wake();
  }

  /** Stops taking new batches and waits for the ones in flight. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.cleanupTimer) clearInterval(this.cleanupTimer);
    this.pollTimer = this.cleanupTimer = null;
    const listening = this.listening;
    this.listening = null;
    await listening?.close().catch(() => undefined);
    if (this.workers > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    // Last, so that it counts what the batches in flight left.
    await this.heartbeat?.stop();
  }

  /** Asks for a look at the outbox now (called on NOTIFY and by the poll timer). */
  wake(): void {
    if (!this.started) return;
    this.wanted = true;
    if (this.workers === 0) this.spawnWorker();
  }

  private spawnWorker(): void {
    this.workers++;
    void this.work().finally(() => {
      this.workers--;
      if (this.workers === 0) for (const resolve of this.idle.splice(0)) resolve();
    });
  }

  private async work(): Promise<void> {
    while (this.started) {
      this.wanted = false;
      let handled: number;
      try {
        handled = await this.relayOnce();
      } catch (error) {
        this.o.onEvent({ type: "error", error });
        return; // the next poll tries again
      }
      // A full batch means more is waiting: widen to the allowed concurrency.
      if (handled === this.o.batchSize && this.workers < this.o.concurrency) this.spawnWorker();
      if (handled < this.o.batchSize && !this.wanted) return;
    }
  }

  private relisten(error: unknown): void {
    this.o.onEvent({ type: "error", error });
    const old = this.listening;
    this.listening = null;
    void old?.close().catch(() => undefined);
    setTimeout(() => {
      if (!this.started || !this.db.listen || this.listening) return;
      this.db
        .listen(
          OUTBOX_CHANNEL,
          () => this.wake(),
          (e) => this.relisten(e),
        )
        .then(
          (listening) => {
            if (this.started) this.listening = listening;
            else void listening.close();
          },
          (e: unknown) => this.relisten(e),
        );
    }, 1000).unref();
  }

  /**
   * Claims, sends and marks one batch of due rows; resolves to how many rows it handled. Rows of
   * one key go in their order (seq): a row waits while an earlier one of its key is held by
   * another relay or waits for its retry, so concurrency (workers, relays) is across keys only.
   */
  async relayOnce(): Promise<number> {
    const events: RelayEvent[] = [];
    const handled = await this.db.transaction(
      async (tx) => {
        const claimed = await claimDue(tx, this.o.batchSize);
        const rows = claimed.length > 0 ? await inKeyOrder(tx, claimed) : claimed;
        if (rows.length > 0) await this.ship(tx, rows, events);
        // Rows left waiting behind another relay's are not counted: this worker then rests until
        // the next wake-up instead of claiming them again at once.
        return rows.length;
      },
      { isolation: "read committed" },
    );
    if (events.some((e) => e.type === "sent")) this.heartbeat?.sent();
    for (const event of events) this.o.onEvent(event); // told only once committed
    return handled;
  }

  /**
   * Sends rows as one batch of messages each standing alone (`atomic: false`): the service
   * answers an outcome per message, so a message it refuses (a clash with another message of
   * the same id, content it cannot store) is marked failed alone and the rest are sent.
   */
  private async ship(tx: Executor, rows: OutboxRow[], events: RelayEvent[]): Promise<void> {
    const ids = rows.map((r) => r.message.id);
    const seqs = rows.map((r) => r.seq);
    let answer: BatchOutcomes | null;
    try {
      answer = await this.client.messages.sendResolvedMinimal(
        rows.map((r) => r.message),
        { retry: false, atomic: false },
      );
    } catch (error) {
      if (isPermanent(error) && rows.length > 1) {
        // Refused as a whole (a message against the schema): the field names the message when it can.
        const culprit = culpritIndex(error, rows.length);
        if (culprit !== null) {
          await this.fail(tx, [rows[culprit]!], describe(error), events);
          await this.ship(
            tx,
            rows.filter((_, i) => i !== culprit),
            events,
          );
        } else {
          for (const row of rows) await this.ship(tx, [row], events);
        }
        return;
      }
      const text = describe(error);
      if (isPermanent(error)) {
        await this.fail(tx, rows, text, events);
        return;
      }
      const attempts = Math.max(...rows.map((r) => r.attempts)) + 1;
      const delayMs = backoffDelayMs(attempts, this.o.backoff);
      await markRetry(tx, seqs, text, delayMs, this.o.maxAttempts);
      events.push(attempts >= this.o.maxAttempts ? { type: "failed", ids, error: text } : { type: "retry", ids, error: text, delayMs });
      return;
    }
    const refused = new Map<number, string>();
    answer?.outcomes?.forEach((outcome, i) => {
      if (outcome === "conflict") refused.set(i, `conflict: message ${ids[i]} was stored before with other content`);
      if (outcome === "invalid") {
        const e = answer!.errors?.find((x) => x.index === i);
        refused.set(i, `invalid_message: ${e?.message ?? "refused by the service"}`.slice(0, 1000));
      }
    });
    // Each refused row with its own reason; the others sent.
    for (const [i, text] of refused) await this.fail(tx, [rows[i]!], text, events);
    const sent = rows.filter((_, i) => !refused.has(i));
    if (sent.length === 0) return;
    await markSent(
      tx,
      sent.map((r) => r.seq),
    );
    events.push({ type: "sent", ids: sent.map((r) => r.message.id) });
  }

  private async fail(tx: Executor, rows: OutboxRow[], text: string, events: RelayEvent[]): Promise<void> {
    await markFailed(
      tx,
      rows.map((r) => r.seq),
      text,
    );
    events.push({ type: "failed", ids: rows.map((r) => r.message.id), error: text });
  }

  /** Deletes sent rows older than the retention period, in batches. */
  async cleanup(): Promise<void> {
    while (await deleteSentBatch(this.db, this.o.retentionMs, this.o.cleanupBatchSize)) {
      // loop until a batch finds nothing more
    }
  }
}
