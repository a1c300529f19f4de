import type { LeasedDelivery } from "../domain/delivery.ts";
import { connect, headers, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import type { AddressJudge } from "../domain/networkPolicy.ts";
import type { NatsEndpoint } from "../domain/subscription.ts";
import { checkedBrokerUrl } from "./guardedConnect.ts";
import { errorText } from "./httpTransport.ts";
import type { Outgoing, SendResult, Transport } from "./transport.ts";
import { brokerFields, natsToken, renderTemplate, withTimeout } from "./brokerMessage.ts";
import { scrubSecrets } from "./brokerUrl.ts";
import { ConnectionPool } from "./connectionPool.ts";

interface NatsClient {
  nc: NatsConnection;
  js: JetStreamClient;
  /** False between a disconnect and the reconnect: sends fail at once instead of waiting in the client's buffer. */
  up: boolean;
}

/** nats://user:pass@host:port, nats://token@host:port, tls://…: connection options without the secrets in `servers`. */
export function natsConnectOptions(text: string): NodeConnectionOptions {
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
 * `Nats-Msg-Id` of a delivery's publish: the message id in its first retry cycle, and the id with
 * the cycle's start (`#<attempts before it>`) after a re-send. JetStream drops a publish whose id
 * it saw within the stream's duplicate window: a retry after a lost PubAck must be dropped, but a
 * re-send (from the dead letters, after the consumer gave up) must reach the consumer again.
 */
export function natsMsgId(delivery: LeasedDelivery): string {
  const cycleStart = delivery.attempt - delivery.attemptInCycle;
  return cycleStart === 0 ? delivery.message.id : `${delivery.message.id}#${cycleStart}`;
}

/**
 * Delivers to NATS JetStream: publishes to the subject with `Nats-Msg-Id` (natsMsgId), done on
 * the stream's PubAck. A retry of a message the stream already holds (its PubAck was lost) is
 * recognised by JetStream's duplicate window and acknowledged as a duplicate: done too.
 * The client reconnects by itself after a server restart; publishes made meanwhile time out
 * and are retried on the subscription's schedule.
 */
export class NatsTransport implements Transport<NatsEndpoint> {
  private readonly pool: ConnectionPool<NatsClient>;

  constructor(
    private readonly timeoutMs: number,
    private readonly judge: AddressJudge,
  ) {
    this.pool = new ConnectionPool(
      (url, lost) => this.open(url, lost),
      (c) => c.nc.drain().catch(() => c.nc.close()),
    );
  }

  private async open(url: string, lost: () => void): Promise<NatsClient> {
    const checked = await checkedBrokerUrl(url, this.judge);
    const options = natsConnectOptions(checked.url);
    if (options.tls) options.tls = { servername: checked.host } as NodeConnectionOptions["tls"];
    const nc = await connect({
      ...options,
      name: "tidings",
      timeout: Math.min(this.timeoutMs, 10_000),
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    const client: NatsClient = { nc, js: jetstream(nc), up: true };
    void nc.closed().then(lost);
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === "disconnect") client.up = false;
        else if (status.type === "reconnect") client.up = true;
      }
    })().catch(() => undefined);
    return client;
  }

  send(endpoint: NatsEndpoint, outgoing: Outgoing): Promise<SendResult> {
    return withTimeout(this.publish(endpoint, outgoing), this.timeoutMs + 1000, () => ({
      ok: false,
      statusCode: null,
      error: `JetStream did not acknowledge within ${this.timeoutMs} ms`,
    }));
  }

  private async publish(endpoint: NatsEndpoint, { delivery, body, subscription, trace }: Outgoing): Promise<SendResult> {
    const subject = renderTemplate(endpoint.subject, delivery, natsToken);
    try {
      const { js, up } = await this.pool.get(endpoint.url);
      if (!up) return { ok: false, statusCode: null, error: "the connection to NATS is down (reconnecting)" };
      const h = headers();
      for (const [name, value] of Object.entries(brokerFields(delivery, subscription, trace))) h.set(name, value);
      h.set("content-type", "application/json");
      await js.publish(subject, body, { msgID: natsMsgId(delivery), headers: h, timeout: this.timeoutMs, retries: 0 });
      return { ok: true, statusCode: null, error: null };
    } catch (error) {
      return { ok: false, statusCode: null, error: scrubSecrets(natsErrorText(error, subject), endpoint.url) };
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * The client names a publish nobody answered (no stream captures the subject, so no server
 * replies) "jetstream is not enabled": say what an operator can act on instead.
 */
function natsErrorText(error: unknown, subject: string): string {
  if (error instanceof Error && error.name === "JetStreamNotEnabled")
    return `no JetStream stream captures subject "${subject}" (no responders; or JetStream is not enabled on the server)`;
  return errorText(error);
}
