import { parseEnvelope, type Envelope } from "../domain/envelope.ts";
import type { Executor } from "../executor/executor.ts";
import type { Inbox } from "../inbox/inbox.ts";

/** What the broker said about one delivery of a message. */
export interface BrokerDelivery {
  broker: "rabbitmq" | "nats" | "redis";
  /** The broker delivered this message before (to this or another consumer) without an ack. */
  redelivered: boolean;
  /** Deliveries so far, this one included, when the broker counts them. */
  deliveryCount: number | null;
  /** The service's attempt number (`tidings-attempt`): above 1, the service sent it again. */
  attempt: number | null;
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
}

export type ConsumeEvent =
  | { type: "applied" | "duplicate"; message: Envelope; delivery: BrokerDelivery }
  | { type: "failed"; message: Envelope; delivery: BrokerDelivery; error: unknown }
  /** Not a Tidings envelope: dead-lettered at once, it could never succeed. */
  | { type: "invalid"; delivery: BrokerDelivery; error: unknown }
  /** The broker connection was lost (restart, network); the consumer reconnects by itself. */
  | { type: "disconnected"; error: unknown }
  | { type: "connected" }
  /** Given up on after too many deliveries: moved to the dead stream (Redis), terminated (JetStream). RabbitMQ dead-letters by itself. */
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

/** What to tell the broker about a delivery. */
export type Verdict = "ack" | "retry" | "reject";

/** The broker-independent part: parse, apply through the inbox, count, report. */
export class ConsumeCore {
  readonly stats: ConsumerStats = { received: 0, applied: 0, duplicates: 0, failed: 0, invalid: 0, redeliveries: 0 };
  readonly concurrency: number;
  private inHand = 0;
  private idle: (() => void)[] = [];

  constructor(private readonly options: ConsumeOptions) {
    this.concurrency = options.concurrency ?? 16;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) throw new RangeError("concurrency must be a positive integer");
  }

  emit(event: ConsumeEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // a listener's exception is not the consumer's problem
    }
  }

  /** Applies one delivery's body; never throws. */
  async process(body: string, delivery: BrokerDelivery): Promise<Verdict> {
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
        return "reject";
      }
      try {
        const outcome = await this.options.inbox.handle(
          this.options.db,
          { id: message.id, topic: message.topic, key: message.key, payload: message.payload },
          (tx) => this.options.handle(message, tx, delivery),
        );
        if (outcome.status === "applied") this.stats.applied++;
        else this.stats.duplicates++;
        this.emit({ type: outcome.status, message, delivery });
        return "ack";
      } catch (error) {
        this.stats.failed++;
        this.emit({ type: "failed", message, delivery, error });
        return "retry";
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
