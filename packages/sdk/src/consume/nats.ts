import type { NodeConnectionOptions } from "@nats-io/transport-node";
import type { ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import { TidingsError } from "../errors.ts";
import { attemptOf, ConsumeCore, Slots, type ConsumeOptions, type Consumer, type Verdict } from "./consumeCore.ts";

export interface NatsConsumeOptions extends ConsumeOptions {
  /** nats://[user:pass@ | token@]host:port */
  url: string;
  stream: string;
  /** Create the stream (file storage) with these subjects when it does not exist. */
  subjects?: string[];
  /** The durable consumer's name: consumers sharing it share the work. */
  durable: string;
  filterSubject?: string;
  /** Unacked this long, a message is redelivered (a consumer that died); default 30 s. */
  ackWaitMs?: number;
}

/** nats://user:pass@host:port, nats://token@host:port, tls://…: connection options without secrets in `servers`. */
function connectOptions(text: string): NodeConnectionOptions {
  const url = new URL(text);
  const options: NodeConnectionOptions = { servers: `${url.hostname}:${url.port || 4222}` };
  const user = decodeURIComponent(url.username);
  const pass = decodeURIComponent(url.password);
  if (user && pass) Object.assign(options, { user, pass });
  else if (user) options.token = user;
  if (url.protocol === "tls:") options.tls = {};
  return options;
}

/**
 * Consumes a JetStream durable pull consumer fed by a Tidings subscription (type `nats`): each
 * message is applied through the inbox in the consumer's own transaction, then acked. A failed
 * handler's message is `nak`ed with its step of the `retry` schedule as the delay; JetStream's
 * delivery count is the try number, and MaxDeliver is the schedule's `maxAttempts`. When the
 * tries run out its last delivery is terminated (`term`: a MSG_TERMINATED advisory to alert on)
 * and reported as given up; the message stays in the stream. A message that is not a Tidings envelope is terminated at once.
 * The client reconnects by itself after a server restart; unacked messages come back after
 * `ackWaitMs`, and the inbox skips those already applied.
 */
export async function consumeNats(options: NatsConsumeOptions): Promise<Consumer> {
  const core = new ConsumeCore(options);
  const maxDeliver = core.retry.maxAttempts;
  const ackWaitMs = options.ackWaitMs ?? 30_000;
  if (!Number.isInteger(ackWaitMs) || ackWaitMs < 1) throw new TidingsError("config", "ackWaitMs must be a positive integer");
  const { connect } = await import("@nats-io/transport-node");
  const { jetstream, jetstreamManager, AckPolicy, StorageType } = await import("@nats-io/jetstream");

  const nc = await connect({
    ...connectOptions(options.url),
    name: `tidings-consumer:${options.durable}`,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
  });
  let messages: ConsumerMessages;
  try {
    const jsm = await jetstreamManager(nc);
    if (options.subjects) {
      try {
        await jsm.streams.info(options.stream);
      } catch (error) {
        if ((error as { code?: number }).code !== 10059) throw error; // not "stream not found"
        await jsm.streams.add({ name: options.stream, subjects: options.subjects, storage: StorageType.File });
      }
    }
    const config = {
      ack_policy: AckPolicy.Explicit,
      max_deliver: maxDeliver,
      ack_wait: ackWaitMs * 1_000_000,
      max_ack_pending: Math.max(1000, core.concurrency * 4),
      ...(options.filterSubject ? { filter_subject: options.filterSubject } : {}),
    };
    try {
      await jsm.consumers.info(options.stream, options.durable);
      await jsm.consumers.update(options.stream, options.durable, config);
    } catch (error) {
      if ((error as { code?: number }).code !== 10014) throw error; // not "consumer not found"
      await jsm.consumers.add(options.stream, { durable_name: options.durable, ...config });
    }
    const consumer = await jetstream(nc).consumers.get(options.stream, options.durable);
    messages = await consumer.consume({ max_messages: core.concurrency * 2 });
  } catch (error) {
    await nc.close().catch(() => undefined);
    throw error;
  }

  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") core.emit({ type: "disconnected", error: status });
      else if (status.type === "reconnect") core.emit({ type: "connected" });
    }
  })().catch(() => undefined);

  function settle(message: JsMsg, verdict: Verdict): void {
    try {
      if (verdict === "ack") message.ack();
      // no reason text on term: nats-server before 2.10 ignores "+TERM <reason>" and leaves the message pending
      else if (verdict === "dead") message.term();
      else message.nak(verdict.retryInMs);
    } catch {
      // disconnected: JetStream redelivers after ack_wait
    }
  }

  const slots = new Slots(core.concurrency);
  const loop = (async () => {
    for await (const message of messages) {
      await slots.run(async () => {
        const count = message.info.deliveryCount;
        const verdict = await core.process(
          message.string(),
          {
            broker: "nats",
            redelivered: message.redelivered,
            deliveryCount: count,
            attempt: attemptOf(message.headers?.get("tidings-attempt")),
            subscription: message.headers?.get("tidings-subscription") || null,
            // the delivery count: a redelivery after a consumer died counts as a try too, so that
            // the last one JetStream makes (MaxDeliver) is always given up on here, not left pending
            tryNumber: count,
          },
          { traceparent: message.headers?.get("traceparent"), tracestate: message.headers?.get("tracestate") },
        );
        settle(message, verdict);
      });
    }
  })().catch((error: unknown) => core.emit({ type: "disconnected", error })); // the consumer or stream was deleted
  core.emit({ type: "connected" });

  return {
    stats: core.stats,
    async close() {
      messages.stop();
      await loop.catch(() => undefined);
      await core.drained();
      await nc.drain().catch(() => nc.close());
    },
  };
}
