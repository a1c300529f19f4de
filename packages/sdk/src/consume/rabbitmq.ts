import type { ChannelModel, ConfirmChannel, ConsumeMessage } from "amqplib";
import { TidingsError } from "../errors.ts";
import { attemptOf, ConsumeCore, sleep, type ConsumeOptions, type Consumer, type Verdict } from "./consumeCore.ts";

export interface RabbitmqConsumeOptions extends ConsumeOptions {
  /** amqp(s)://user:pass@host:port/vhost */
  url: string;
  queue: string;
  /**
   * The exchange the Tidings subscription publishes to: declared (topic, durable) and the queue
   * bound to it with `bindingKeys`. Leave it out to consume a queue bound elsewhere.
   */
  exchange?: string;
  /** Default `["#"]` (everything the exchange gets). */
  bindingKeys?: string[];
  /**
   * Declare the queue as a durable quorum queue with a delivery limit and a dead-letter
   * exchange `<queue>.dlx` feeding the queue `<queue>.dead` (default true). With false, the
   * queue and its dead-lettering are used as they are.
   */
  declare?: boolean;
  /**
   * Deliveries of a message without a verdict (its consumer died or lost its connection while
   * handling it) before RabbitMQ dead-letters it by itself; default 5. Failures of the handler are
   * counted by `retry` instead.
   */
  maxDeliveries?: number;
  /** Wait between reconnection attempts after the broker went away; default 1 s. */
  reconnectDelayMs?: number;
}

/** The queue's dead-letter names when `declare` is on. */
export const rabbitmqDeadLetter = (queue: string) => ({ exchange: `${queue}.dlx`, queue: `${queue}.dead` });

/** The queue a failed message waits in for `delayMs` before it goes back to `queue`: one per step of the schedule. */
export const rabbitmqRetryQueue = (queue: string, delayMs: number) => `${queue}.retry.${delayMs}ms`;

/** This consumer's try of a message, carried on the copies it puts back after a failure. */
const TRY_HEADER = "tidings-consumer-try";

/**
 * Consumes a RabbitMQ queue that a Tidings subscription (type `rabbitmq`) feeds: each message is
 * applied through the inbox in the consumer's own transaction, then acked. After a failure the
 * message waits its step of the `retry` schedule in a retry queue (`<queue>.retry.<ms>ms`: a
 * message TTL of that step, dead-lettered back into the queue; one queue per step, so a long wait
 * never holds up a short one) — a copy is published there and confirmed before the original is
 * acked. When the tries run out it is dead-lettered (`<queue>.dead` with `declare`) and reported
 * as given up. A message that is not a Tidings envelope is dead-lettered at once. Reconnects by
 * itself after a broker restart; messages in hand when a connection is lost are redelivered, and
 * the inbox skips those already applied.
 */
export async function consumeRabbitmq(options: RabbitmqConsumeOptions): Promise<Consumer> {
  const core = new ConsumeCore(options);
  const maxDeliveries = options.maxDeliveries ?? 5;
  if (!Number.isInteger(maxDeliveries) || maxDeliveries < 1) throw new TidingsError("config", "maxDeliveries must be a positive integer");
  const reconnectDelayMs = options.reconnectDelayMs ?? 1000;
  const { connect } = await import("amqplib");

  let closing = false;
  let model: ChannelModel | null = null;
  let channel: ConfirmChannel | null = null;
  let consumerTag: string | null = null;

  async function setup(ch: ConfirmChannel): Promise<void> {
    if (options.declare !== false) {
      const dead = rabbitmqDeadLetter(options.queue);
      await ch.assertExchange(dead.exchange, "fanout", { durable: true });
      await ch.assertQueue(dead.queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
      await ch.bindQueue(dead.queue, dead.exchange, "");
      await ch.assertQueue(options.queue, {
        durable: true,
        arguments: {
          "x-queue-type": "quorum",
          // RabbitMQ counts returns: a limit of n-1 returns means n deliveries in all
          "x-delivery-limit": maxDeliveries - 1,
          "x-dead-letter-exchange": dead.exchange,
        },
      });
    }
    if (options.exchange) {
      await ch.assertExchange(options.exchange, "topic", { durable: true });
      for (const key of options.bindingKeys ?? ["#"]) await ch.bindQueue(options.queue, options.exchange, key);
    }
    // One retry queue per step: its messages expire after the step and go back to the queue.
    for (const delayMs of new Set(core.retry.schedule)) {
      await ch.assertQueue(rabbitmqRetryQueue(options.queue, delayMs), {
        durable: true,
        arguments: { "x-message-ttl": delayMs, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": options.queue },
      });
    }
    await ch.prefetch(core.concurrency);
  }

  /** Puts a copy of a failed message in the retry queue of its step, confirmed, then acks the original. */
  async function retryLater(ch: ConfirmChannel, message: ConsumeMessage, delayMs: number, tryNumber: number): Promise<void> {
    const { properties } = message;
    await new Promise<void>((resolve, reject) =>
      ch.sendToQueue(
        rabbitmqRetryQueue(options.queue, delayMs),
        message.content,
        {
          persistent: true,
          contentType: properties.contentType,
          messageId: properties.messageId,
          type: properties.type,
          appId: properties.appId,
          timestamp: properties.timestamp,
          headers: { ...withoutBrokerHeaders(properties.headers), [TRY_HEADER]: String(tryNumber + 1) },
        },
        (error: unknown) => (error ? reject(error) : resolve()),
      ),
    );
    ch.ack(message);
  }

  async function settle(ch: ConfirmChannel, message: ConsumeMessage, verdict: Verdict, tryNumber: number): Promise<void> {
    if (ch !== channel) return; // its channel is gone: the broker redelivers the message
    try {
      if (verdict === "ack") ch.ack(message);
      else if (verdict === "dead")
        ch.nack(message, false, false); // the queue's dead-letter exchange takes it
      else await retryLater(ch, message, verdict.retryInMs, tryNumber);
    } catch {
      // the channel closed meanwhile: same as above (a copy already put back is applied once, by the inbox)
    }
  }

  async function onMessage(ch: ConfirmChannel, message: ConsumeMessage): Promise<void> {
    const headers = message.properties.headers ?? {};
    const count = attemptOf(headers["x-delivery-count"]);
    const tryNumber = attemptOf(headers[TRY_HEADER]) ?? 1;
    const subscription = headers["tidings-subscription"];
    const verdict = await core.process(
      message.content.toString("utf8"),
      {
        broker: "rabbitmq",
        redelivered: message.fields.redelivered || count !== null || tryNumber > 1,
        deliveryCount: (count ?? 0) + 1,
        attempt: attemptOf(headers["tidings-attempt"]),
        subscription: typeof subscription === "string" ? subscription : subscription === undefined ? null : String(subscription),
        tryNumber,
      },
      headers,
    );
    await settle(ch, message, verdict, tryNumber);
  }

  async function connectOnce(): Promise<void> {
    const m = await connect(options.url, { clientProperties: { connection_name: `tidings-consumer:${options.queue}` } });
    m.on("error", () => undefined); // followed by "close"
    try {
      const ch = await m.createConfirmChannel();
      ch.on("error", () => undefined);
      await setup(ch);
      model = m;
      channel = ch;
      m.on("close", (error?: Error) => {
        if (model === m) {
          model = null;
          channel = null;
        }
        if (!closing) {
          core.emit({ type: "disconnected", error });
          void reconnect();
        }
      });
      consumerTag = (await ch.consume(options.queue, (message) => message && void onMessage(ch, message))).consumerTag;
      core.emit({ type: "connected" });
    } catch (error) {
      await m.close().catch(() => undefined);
      throw error;
    }
  }

  let reconnecting = false;
  async function reconnect(): Promise<void> {
    if (reconnecting) return;
    reconnecting = true;
    try {
      while (!closing && !model) {
        await sleep(reconnectDelayMs);
        if (closing) break;
        try {
          await connectOnce();
        } catch (error) {
          core.emit({ type: "disconnected", error });
        }
      }
    } finally {
      reconnecting = false;
    }
  }

  await connectOnce(); // the first connection fails loudly: a wrong URL or queue is a configuration error

  return {
    stats: core.stats,
    async close() {
      closing = true;
      const ch = channel;
      if (ch && consumerTag) await ch.cancel(consumerTag).catch(() => undefined);
      await core.drained();
      await (model as ChannelModel | null)?.close().catch(() => undefined);
    },
  };
}

/** Headers RabbitMQ adds on the way (dead-lettering, delivery counts): not carried to the copy. */
function withoutBrokerHeaders(headers: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers ?? {})) if (!name.startsWith("x-")) out[name] = value;
  return out;
}
