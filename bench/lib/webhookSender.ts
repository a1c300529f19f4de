import { Pool } from "undici";
import { newSigningSecret, signWebhook } from "../../packages/server/src/transports/signature.ts";
import { Receiver } from "./receiver.ts";

/** Keep-alive connections to the receiver: as many as Tidings' default in-flight deliveries (TIDINGS_DELIVERY_CONCURRENCY 128). */
export const SENDER_CONNECTIONS = 128;
/** Overall time a request may take, answer included: Tidings' default delivery timeout (TIDINGS_DELIVERY_TIMEOUT 10s). */
export const SENDER_TIMEOUT_MS = 10_000;
/** Bytes of an answer read at most; a longer answer ends its connection. */
const ANSWER_LIMIT_BYTES = 500;

export const SENDER_CONFIG = `Standard Webhooks-signed POST (HMAC-SHA256, webhook-id = job id) of the payload over undici, one Pool of ${SENDER_CONNECTIONS} keep-alive connections, ${SENDER_TIMEOUT_MS / 1000} s overall timeout, answer read up to ${ANSWER_LIMIT_BYTES} bytes, non-2xx or error fails the job`;

/**
 * What a peer's job does in the deliver workload's like-for-like variants: what one Tidings
 * delivery does. Signs the JSON body as the Standard Webhooks spec says (the same signing code
 * as the service), POSTs it on a shared keep-alive pool, reads at most a small answer, and
 * throws on a non-2xx answer, an error or the timeout, so the queue records the job as failed.
 */
export class WebhookSender {
  private readonly pool: Pool;
  private readonly path: string;
  private readonly secret = newSigningSecret();

  constructor(url: string) {
    const target = new URL(url);
    this.pool = new Pool(target.origin, { connections: SENDER_CONNECTIONS, pipelining: 1, keepAliveTimeout: 30_000 });
    this.path = target.pathname + target.search;
  }

  async send(id: string, data: unknown): Promise<void> {
    const body = JSON.stringify(data);
    const timestamp = Math.floor(Date.now() / 1000);
    const response = await this.pool.request({
      method: "POST",
      path: this.path,
      headers: {
        "content-type": "application/json",
        "webhook-id": id,
        "webhook-timestamp": String(timestamp),
        "webhook-signature": signWebhook(this.secret, id, timestamp, body),
      },
      body,
      signal: AbortSignal.timeout(SENDER_TIMEOUT_MS),
    });
    // dump() reads at most `limit` bytes and closes the connection if more were coming.
    await response.body.dump({ limit: ANSWER_LIMIT_BYTES });
    if (response.statusCode < 200 || response.statusCode > 299) throw new Error(`the receiver answered ${response.statusCode}`);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** A fresh in-runner Receiver and a sender to it for the duration of `fn`. */
export async function withReceiver<T>(fn: (sender: WebhookSender, receiver: Receiver) => Promise<T>): Promise<T> {
  const receiver = await new Receiver().start();
  const sender = new WebhookSender(receiver.url);
  try {
    return await fn(sender, receiver);
  } finally {
    await sender.close().catch(() => {});
    await receiver.stop();
  }
}

/** What a peer's job does in the deliver workload: nothing, or what a Tidings delivery does. */
export type PeerJob = "no-op" | "signed POST";
