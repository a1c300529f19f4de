import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";
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
  /** Deliveries of a message whose handler keeps failing before RabbitMQ dead-letters it; default 5. */
  maxDeliveries?: number;
  /** Wait before a failed message is given back to the queue (a pause between tries); default 1 s. */
  retryDelayMs?: number;
  /** Wait between reconnection attempts after the broker went away; default 1 s. */
  reconnectDelayMs?: number;
}

/** The queue's dead-letter names when `declare` is on. */
export const rabbitmqDeadLetter = (queue: string) => ({ exchange: `${queue}.dlx`, queue: `${queue}.dead` });

/**
 * Consumes a RabbitMQ queue that a Tidings subscription (type `rabbitmq`) feeds: each message is
 * applied through the inbox in the consumer's own transaction, then acked. A failed handler is
 * not acked: the message goes back to the queue after `retryDelayMs`, and after
 * `maxDeliveries` the quorum queue's delivery limit dead-letters it. A message that is not a
 * Tidings envelope is dead-lettered at once. Reconnects by itself after a broker restart;
 * messages in hand when a connection is lost are redelivered, and the inbox skips those
 * already applied.
 */
export async function consumeRabbitmq(options: RabbitmqConsumeOptions): Promise<Consumer> {
  const core = new ConsumeCore(options);
  const maxDeliveries = options.maxDeliveries ?? 5;
  if (!Number.isInteger(maxDeliveries) || maxDeliveries < 1) throw new TidingsError("config", "maxDeliveries must be a positive integer");
  const retryDelayMs = options.retryDelayMs ?? 1000;
  const reconnectDelayMs = options.reconnectDelayMs ?? 1000;
  const { connect } = await import("amqplib");

  let closing = false;
  let model: ChannelModel | null = null;
  let channel: Channel | null = null;
  let consumerTag: string | null = null;

  async function setup(ch: Channel): Promise<void> {
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
    await ch.prefetch(core.concurrency);
  }

  function settle(ch: Channel, message: ConsumeMessage, verdict: Verdict): void {
    if (ch !== channel) return; // its channel is gone: the broker redelivers the message
    try {
      if (verdict === "ack") ch.ack(message);
      else ch.nack(message, false, verdict === "retry");
    } catch {
      // the channel closed meanwhile: same as above
    }
  }

  async function onMessage(ch: Channel, message: ConsumeMessage): Promise<void> {
    const headers = message.properties.headers ?? {};
    const count = attemptOf(headers["x-delivery-count"]);
    const verdict = await core.process(message.content.toString("utf8"), {
      broker: "rabbitmq",
      redelivered: message.fields.redelivered || count !== null,
      deliveryCount: (count ?? 0) + 1,
      attempt: attemptOf(headers["tidings-attempt"]),
    });
    if (verdict === "retry" && retryDelayMs > 0) await sleep(retryDelayMs);
    settle(ch, message, verdict);
  }

  async function connectOnce(): Promise<void> {
    const m = await connect(options.url, { clientProperties: { connection_name: `tidings-consumer:${options.queue}` } });
    m.on("error", () => undefined); // followed by "close"
    try {
      const ch = await m.createChannel();
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
