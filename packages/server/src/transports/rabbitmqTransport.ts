import { connect, type ChannelModel, type ConfirmChannel } from "amqplib";
import type { AddressJudge } from "../domain/networkPolicy.ts";
import type { RabbitmqEndpoint } from "../domain/subscription.ts";
import { checkedBrokerUrl } from "./guardedConnect.ts";
import { errorText } from "./httpTransport.ts";
import type { Outgoing, SendResult, Transport } from "./transport.ts";
import { brokerFields, renderTemplate, withTimeout } from "./brokerMessage.ts";
import { scrubSecrets } from "./brokerUrl.ts";
import { ConnectionPool } from "./connectionPool.ts";

interface AmqpConnection {
  model: ChannelModel;
  channel: Promise<ConfirmChannel> | null;
  /** Exchanges seen to exist on this connection (checked once: a publish to a missing one would close the channel). */
  exchanges: Set<string>;
  /** Publishes the broker returned as unroutable; the return arrives before the confirm. */
  returned: Set<string>;
}

const noop = () => undefined;

/**
 * Delivers to RabbitMQ: a persistent message published on a confirm channel with `mandatory`,
 * done when the broker confirms it (for a durable queue: written to disk). A message no queue
 * is bound for comes back as a return, and is a failed attempt rather than silently dropped.
 */
export class RabbitmqTransport implements Transport<RabbitmqEndpoint> {
  private readonly pool: ConnectionPool<AmqpConnection>;

  constructor(
    private readonly timeoutMs: number,
    private readonly judge: AddressJudge,
  ) {
    this.pool = new ConnectionPool(
      (url, lost) => this.open(url, lost),
      (c) => c.model.close(),
    );
  }

  private async open(url: string, lost: () => void): Promise<AmqpConnection> {
    const checked = await checkedBrokerUrl(url, this.judge);
    const tls = checked.url.startsWith("amqps:") ? { servername: checked.host } : {};
    const model = await connect(checked.url, { ...tls, timeout: Math.min(this.timeoutMs, 10_000), clientProperties: { connection_name: "tidings" } });
    const connection: AmqpConnection = { model, channel: null, exchanges: new Set(), returned: new Set() };
    model.on("error", noop); // followed by "close"
    model.on("close", lost);
    model.on("blocked", noop); // publishes wait (and time out) while the broker is out of resources
    return connection;
  }

  private channel(c: AmqpConnection): Promise<ConfirmChannel> {
    if (c.channel) return c.channel;
    const opening = c.model.createConfirmChannel().then((channel) => {
      channel.on("error", noop); // followed by "close"
      channel.on("close", () => {
        if (c.channel === opening) c.channel = null;
        c.exchanges.clear();
      });
      channel.on("return", (message: { properties: { headers?: Record<string, unknown> } }) => {
        const key = message.properties.headers?.["tidings-delivery"];
        if (typeof key === "string") c.returned.add(key);
      });
      return channel;
    });
    opening.catch(() => {
      if (c.channel === opening) c.channel = null;
    });
    c.channel = opening;
    return opening;
  }

  /** On a channel of its own: a missing exchange closes the channel it is checked on. */
  private async exchangeExists(c: AmqpConnection, exchange: string): Promise<boolean> {
    const probe = await c.model.createChannel();
    probe.on("error", noop);
    try {
      await probe.checkExchange(exchange);
      c.exchanges.add(exchange);
      return true;
    } catch (error) {
      if ((error as { code?: number }).code === 404) return false;
      throw error;
    } finally {
      probe.close().catch(noop);
    }
  }

  send(endpoint: RabbitmqEndpoint, outgoing: Outgoing): Promise<SendResult> {
    return withTimeout(this.publish(endpoint, outgoing), this.timeoutMs, () => ({
      ok: false,
      statusCode: null,
      error: `RabbitMQ did not confirm within ${this.timeoutMs} ms`,
    }));
  }

  private async publish(endpoint: RabbitmqEndpoint, { delivery, body, subscription, trace }: Outgoing): Promise<SendResult> {
    try {
      const c = await this.pool.get(endpoint.url);
      const channel = await this.channel(c);
      if (endpoint.exchange !== "" && !c.exchanges.has(endpoint.exchange) && !(await this.exchangeExists(c, endpoint.exchange))) {
        return { ok: false, statusCode: null, error: `exchange "${endpoint.exchange}" does not exist (declare it, or start its consumer first)` };
      }
      const routingKey = renderTemplate(endpoint.routingKey ?? "{topic}", delivery);
      const key = `${delivery.deliveryId}:${delivery.attempt}`;
      const m = delivery.message;
      await new Promise<void>((resolve, reject) => {
        channel.publish(
          endpoint.exchange,
          routingKey,
          Buffer.from(body),
          {
            persistent: true,
            mandatory: true,
            contentType: "application/json",
            messageId: m.id,
            type: m.topic,
            appId: "tidings",
            timestamp: Math.floor(Date.now() / 1000),
            headers: { ...brokerFields(delivery, subscription, trace), "tidings-delivery": key },
          },
          (error: unknown) => (error ? reject(error instanceof Error ? error : new Error(`RabbitMQ refused the message: ${String(error)}`)) : resolve()),
        );
      });
      if (c.returned.delete(key)) {
        return { ok: false, statusCode: null, error: `unroutable: no queue is bound to exchange "${endpoint.exchange}" for routing key "${routingKey}"` };
      }
      return { ok: true, statusCode: null, error: null };
    } catch (error) {
      return { ok: false, statusCode: null, error: scrubSecrets(errorText(error), endpoint.url) };
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
