import { parseEnvelope, type Envelope } from "../domain/envelope.ts";
import type { Executor } from "../executor/executor.ts";
import type { Inbox } from "../inbox/inbox.ts";
import { compileRetryPlan, nextTry, type RetryOptions, type RetryPlan } from "../domain/retrySchedule.ts";
import { errorText, type OutcomeKind, type OutcomeReporter } from "../outcomes/outcomeReporter.ts";
import { consumerAttributes, inConsumerSpan } from "../tracing/otel.ts";

/** What the broker said about one delivery of a message. */
export interface BrokerDelivery {
  broker: "rabbitmq" | "nats" | "redis";
  /** The broker delivered this message before (to this or another consumer) without an ack. */
  redelivered: boolean;
  /** Deliveries so far, this one included, when the broker counts them. */
  deliveryCount: number | null;
  /** The service's attempt number (`tidings-attempt`): above 1, the service sent it again. */
  attempt: number | null;
  /** The subscription that delivered it (`tidings-subscription`), when the service said. */
  subscription: string | null;
  /** This consumer's try of the message (1-based): its handler failed `tryNumber - 1` times before. */
  tryNumber: number;
}

/** Options every broker consumer takes. */
export interface ConsumeOptions {
  /** The consumer's database; each message is applied in a transaction of it. */
  db: Executor;
  inbox: Inbox;
  /** The business change for one message, in the inbox's transaction `tx`. */
  handle(message: Envelope, tx: Executor, delivery: BrokerDelivery): Promise<unknown>;
  /** Messages handled at once; default 16. */
  concurrency?: number;
  /** Told of each outcome (for logs and metrics); an exception thrown here is ignored. */
  onEvent?: (event: ConsumeEvent) => void;
  /**
   * When a failed message is tried again: the schedule syntax of a subscription's `retry`
   * (default: 1m 5m 10m 30m 1h 2h 5h 10h, then given up on: the broker's dead letter).
   */
  retry?: RetryOptions;
  /**
   * Reports each message's outcome to the service (applied, duplicate, failed; a give-up as
   * failed with `gaveUp`, which shows the delivery among the console's dead letters).
   */
  outcomes?: OutcomeReporter;
  /** The subscription reported on when a message does not name it (`tidings-subscription`, sent by the service). */
  subscription?: string;
}

export type ConsumeEvent =
  | { type: "applied" | "duplicate"; message: Envelope; delivery: BrokerDelivery }
  | { type: "failed"; message: Envelope; delivery: BrokerDelivery; error: unknown }
  /** Not a Tidings envelope: dead-lettered at once, it could never succeed. */
  | { type: "invalid"; delivery: BrokerDelivery; error: unknown }
  /** The broker connection was lost (restart, network); the consumer reconnects by itself. */
  | { type: "disconnected"; error: unknown }
  | { type: "connected" }
  /** Given up on: its tries ran out (`retry`), dead-lettered: `<queue>.dead` (RabbitMQ), `<stream>:dead` (Redis), terminated (JetStream). */
  | { type: "dead"; id: string; deliveryCount: number };

export interface ConsumerStats {
  received: number;
  applied: number;
  duplicates: number;
  failed: number;
  invalid: number;
  /** Deliveries the broker marked as redelivered. */
  redeliveries: number;
}

/** A running consumer. */
export interface Consumer {
  readonly stats: Readonly<ConsumerStats>;
  /** Stops taking messages, waits for those in hand, and disconnects. */
  close(): Promise<void>;
}

/** What to tell the broker about a delivery: done; try again in `retryInMs`; dead-letter it (gave up, or not an envelope). */
export type Verdict = "ack" | { retryInMs: number } | "dead";

/** The broker-independent part: parse, apply through the inbox, count, report. */
export class ConsumeCore {
  readonly stats: ConsumerStats = { received: 0, applied: 0, duplicates: 0, failed: 0, invalid: 0, redeliveries: 0 };
  readonly concurrency: number;
  readonly retry: RetryPlan;
  private inHand = 0;
  private idle: (() => void)[] = [];

  constructor(private readonly options: ConsumeOptions) {
    this.concurrency = options.concurrency ?? 16;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) throw new RangeError("concurrency must be a positive integer");
    this.retry = compileRetryPlan(options.retry);
  }

  /** Queues an outcome report (never waits): the subscription is the delivery's, else the configured one. */
  private report(message: Envelope, delivery: BrokerDelivery, outcome: OutcomeKind, error?: unknown, gaveUp = false): void {
    const subscription = delivery.subscription ?? this.options.subscription;
    if (!this.options.outcomes || !subscription) return;
    this.options.outcomes.report({
      subscription,
      messageId: message.id,
      outcome,
      ...(error === undefined ? {} : { error: errorText(error) }),
      ...(gaveUp ? { gaveUp: true } : {}),
    });
  }

  emit(event: ConsumeEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // a listener's exception is not the consumer's problem
    }
  }

  /**
   * Applies one delivery's body; never throws. `headers`: the broker message's headers (lower-case
   * names), whose W3C trace context the handler's consumer span continues.
   */
  async process(body: string, delivery: BrokerDelivery, headers: Record<string, unknown> = {}): Promise<Verdict> {
    this.inHand++;
    try {
      this.stats.received++;
      if (delivery.redelivered) this.stats.redeliveries++;
      let message: Envelope;
      try {
        message = parseEnvelope(body);
      } catch (error) {
        this.stats.invalid++;
        this.emit({ type: "invalid", delivery, error });
        return "dead";
      }
      try {
        const outcome = await inConsumerSpan(
          `process ${message.topic}`,
          headers,
          { ...consumerAttributes(message, delivery.subscription ?? this.options.subscription, delivery.attempt), "tidings.broker": delivery.broker },
          () =>
            this.options.inbox.handle(this.options.db, { id: message.id, topic: message.topic, key: message.key, payload: message.payload }, (tx) =>
              this.options.handle(message, tx, delivery),
            ),
          (o) => o.status,
        );
        if (outcome.status === "applied") this.stats.applied++;
        else this.stats.duplicates++;
        this.emit({ type: outcome.status, message, delivery });
        this.report(message, delivery, outcome.status);
        return "ack";
      } catch (error) {
        this.stats.failed++;
        this.emit({ type: "failed", message, delivery, error });
        const next = nextTry(this.retry, delivery.tryNumber);
        if (next !== "give up") {
          this.report(message, delivery, "failed", error);
          return next;
        }
        this.report(message, delivery, "failed", error, true);
        this.emit({ type: "dead", id: message.id, deliveryCount: delivery.tryNumber });
        return "dead";
      }
    } finally {
      this.inHand--;
      if (this.inHand === 0) for (const wake of this.idle.splice(0)) wake();
    }
  }

  /** Resolves when no message is in hand. */
  drained(): Promise<void> {
    if (this.inHand === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }
}

/** `tidings-attempt` from broker headers, or null. */
export function attemptOf(value: unknown): number | null {
  const n = Number(typeof value === "object" && value !== null ? String(value) : value);
  return Number.isInteger(n) && n > 0 ? n : null;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs at most `limit` tasks at once; `run` waits for a free slot before starting one. */
export class Slots {
  private busy = 0;
  private waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run(task: () => Promise<void>): Promise<void> {
    while (this.busy >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.busy++;
    void task().finally(() => {
      this.busy--;
      this.waiting.shift()?.();
    });
  }
}
