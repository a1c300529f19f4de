import { Agent, request } from "undici";
import type { HttpEndpoint } from "../store/subscriptions.ts";
import { signWebhook } from "./signature.ts";

export interface SendResult {
  ok: boolean;
  statusCode: number | null;
  error: string | null;
  /** The receiver's Retry-After on 429/503, in ms. */
  retryAfterMs?: number;
}

export interface OutgoingDelivery {
  messageId: string;
  attempt: number;
  body: string;
}

const ERROR_TEXT_LIMIT = 500;

/** Retry-After is either delay-seconds or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Delivers over HTTP POST with Standard Webhooks headers, on pooled keep-alive connections. */
export class HttpTransport {
  private readonly agent: Agent;

  constructor(private readonly timeoutMs: number, connectionsPerOrigin: number) {
    this.agent = new Agent({
      connections: connectionsPerOrigin,
      keepAliveTimeout: 30_000,
      connect: { timeout: Math.min(timeoutMs, 10_000) },
    });
  }

  async send(endpoint: HttpEndpoint, secret: string, delivery: OutgoingDelivery): Promise<SendResult> {
    const timestamp = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      ...endpoint.headers,
      "content-type": "application/json",
      "user-agent": "tidings",
      "webhook-id": delivery.messageId,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": signWebhook(secret, delivery.messageId, timestamp, delivery.body),
      "tidings-attempt": String(delivery.attempt),
    };
    try {
      const response = await request(endpoint.url, {
        method: "POST",
        headers,
        body: delivery.body,
        dispatcher: this.agent,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      const { statusCode } = response;
      if (statusCode >= 200 && statusCode < 300) {
        await response.body.dump();
        return { ok: true, statusCode, error: null };
      }
      const text = (await response.body.text().catch(() => "")).slice(0, ERROR_TEXT_LIMIT);
      const result: SendResult = { ok: false, statusCode, error: `HTTP ${statusCode}${text ? `: ${text}` : ""}` };
      if (statusCode === 429 || statusCode === 503) {
        const retryAfterMs = parseRetryAfter(response.headers["retry-after"]);
        if (retryAfterMs !== undefined) result.retryAfterMs = retryAfterMs;
      }
      return result;
    } catch (error) {
      const err = error as Error & { code?: string };
      return { ok: false, statusCode: null, error: `${err.code ?? err.name}: ${err.message}`.slice(0, ERROR_TEXT_LIMIT) };
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
