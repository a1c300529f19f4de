import { Redis } from "ioredis";
import type { AddressJudge } from "../domain/networkPolicy.ts";
import type { RedisEndpoint } from "../domain/subscription.ts";
import { checkedBrokerUrl } from "./guardedConnect.ts";
import { errorText } from "./httpTransport.ts";
import type { Outgoing, SendResult, Transport } from "./transport.ts";
import { brokerFields } from "./brokerMessage.ts";
import { scrubSecrets } from "./brokerUrl.ts";
import { ConnectionPool } from "./connectionPool.ts";

/**
 * Delivers to a Redis stream with `XADD` (fields: the broker fields and `body`, the envelope),
 * optionally trimmed with `MAXLEN ~`; done on the reply, which carries the entry id. How durable
 * that reply is depends on the server: with `appendonly yes` and `appendfsync always` the entry
 * is on disk; with the defaults a server crash may lose the last second.
 *
 * The client reconnects by itself after a restart; commands are not queued while it is
 * disconnected (`enableOfflineQueue: false`), so a send to a Redis that is down fails at once
 * and is retried on the subscription's schedule.
 */
export class RedisTransport implements Transport<RedisEndpoint> {
  private readonly pool: ConnectionPool<Redis>;

  constructor(
    private readonly timeoutMs: number,
    private readonly judge: AddressJudge,
  ) {
    this.pool = new ConnectionPool(
      (url, lost) => this.open(url, lost),
      async (client) => void client.disconnect(),
    );
  }

  private async open(url: string, lost: () => void): Promise<Redis> {
    const checked = await checkedBrokerUrl(url, this.judge);
    const client = new Redis(checked.url, {
      ...(checked.url.startsWith("rediss:") ? { tls: { servername: checked.host } } : {}),
      lazyConnect: true,
      protocol: 2, // RESP2 works with every Redis; XADD answers the same either way
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.timeoutMs,
      connectTimeout: Math.min(this.timeoutMs, 10_000),
      retryStrategy: (times) => Math.min(100 * times, 2000),
      connectionName: "tidings",
    });
    client.on("error", () => undefined); // reconnects by itself; each failed command reports its own error
    client.on("end", lost);
    try {
      await client.connect();
    } catch (error) {
      client.disconnect();
      throw error;
    }
    return client;
  }

  async send(endpoint: RedisEndpoint, { delivery, body, subscription, trace }: Outgoing): Promise<SendResult> {
    try {
      const client = await this.pool.get(endpoint.url);
      if (client.status !== "ready") return { ok: false, statusCode: null, error: `the connection to Redis is down (${client.status})` };
      const args: (string | number)[] = [endpoint.stream];
      if (endpoint.maxLen !== undefined) args.push("MAXLEN", "~", endpoint.maxLen);
      args.push("*");
      for (const [name, value] of Object.entries(brokerFields(delivery, subscription, trace))) args.push(name, value);
      args.push("body", body);
      const id = await client.call("XADD", ...args);
      if (typeof id !== "string") return { ok: false, statusCode: null, error: `XADD answered ${String(id)}` };
      return { ok: true, statusCode: null, error: null };
    } catch (error) {
      return { ok: false, statusCode: null, error: scrubSecrets(errorText(error), endpoint.url) };
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
