import { Agent, request } from "undici";
import type { HttpEndpoint } from "../store/subscriptions.ts";
import { signWebhook } from "./signature.ts";
import type { Outgoing, Transport } from "./transport.ts";

export const errorText = (error: unknown): string => {
  const err = error as Error & { code?: string };
  return `${err.code ?? err.name}: ${err.message}`.slice(0, ERROR_TEXT_LIMIT);
};

export interface SendResult {
  ok: boolean;
  statusCode: number | null;
  error: string | null;
  /** The receiver's Retry-After on 429/503, in ms. */
  retryAfterMs?: number;
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
export class HttpTransport implements Transport<HttpEndpoint> {
  private readonly agent: Agent;

  constructor(private readonly timeoutMs: number, connectionsPerOrigin: number) {
    this.agent = new Agent({
      connections: connectionsPerOrigin,
      keepAliveTimeout: 30_000,
      connect: { timeout: Math.min(timeoutMs, 10_000) },
    });
  }

  /** POSTs a JSON body signed per Standard Webhooks; the caller reads the response. */
  post(url: string, secret: string, id: string, body: string, extraHeaders: Record<string, string>) {
    const timestamp = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      ...extraHeaders,
      "content-type": "application/json",
      "user-agent": "tidings",
      "webhook-id": id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": signWebhook(secret, id, timestamp, body),
    };
    return request(url, {
      method: "POST",
      headers,
      body,
      dispatcher: this.agent,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
  }

  async send(endpoint: HttpEndpoint, { delivery, body, secret }: Outgoing): Promise<SendResult> {
    try {
      const response = await this.post(endpoint.url, secret, delivery.message.id, body, {
        ...endpoint.headers,
        "tidings-attempt": String(delivery.attempt),
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
      return { ok: false, statusCode: null, error: errorText(error) };
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
