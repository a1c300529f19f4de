import { Agent, request, type Dispatcher } from "undici";
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

interface Target {
  origin: string;
  path: string;
  /** The endpoint's own headers and the fixed ones, as name, value, name, value... */
  headers: string[];
}

/** Delivers over HTTP POST with Standard Webhooks headers, on pooled keep-alive connections. */
export class HttpTransport implements Transport<HttpEndpoint> {
  private readonly agent: Agent;
  private readonly targets = new WeakMap<HttpEndpoint, Target>();

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

  /**
   * One delivery, through `dispatch()` with a small handler rather than `request()`: no body
   * stream per response, a 2xx body is dropped as it arrives, and at most ERROR_TEXT_LIMIT bytes
   * of any other body are kept for the attempt's error text.
   */
  send(endpoint: HttpEndpoint, { delivery, body, secret }: Outgoing): Promise<SendResult> {
    const target = this.targetOf(endpoint);
    const id = delivery.message.id;
    const timestamp = Math.floor(Date.now() / 1000);
    const headers = target.headers.concat(
      "webhook-id", id,
      "webhook-timestamp", String(timestamp),
      "webhook-signature", signWebhook(secret, id, timestamp, body),
      "tidings-attempt", String(delivery.attempt),
    );
    return new Promise<SendResult>((resolve) => {
      let statusCode = 0;
      let retryAfter: string | string[] | undefined;
      let kept: Buffer[] | null = null;
      let keptBytes = 0;
      const handler: Dispatcher.DispatchHandler = {
        // Its presence tells undici this handler speaks the current (v7) handler interface.
        onRequestStart() {},
        onResponseStart(_controller, code, responseHeaders) {
          statusCode = code;
          if (code < 200 || code >= 300) {
            kept = [];
            retryAfter = responseHeaders["retry-after"];
          }
        },
        onResponseData(_controller, chunk) {
          if (kept && keptBytes < ERROR_TEXT_LIMIT) {
            kept.push(chunk);
            keptBytes += chunk.length;
          }
        },
        onResponseEnd() {
          if (statusCode >= 200 && statusCode < 300) return resolve({ ok: true, statusCode, error: null });
          const text = kept ? Buffer.concat(kept).toString("utf8").slice(0, ERROR_TEXT_LIMIT) : "";
          const result: SendResult = { ok: false, statusCode, error: `HTTP ${statusCode}${text ? `: ${text}` : ""}`.slice(0, ERROR_TEXT_LIMIT) };
          if (statusCode === 429 || statusCode === 503) {
            const retryAfterMs = parseRetryAfter(retryAfter);
            if (retryAfterMs !== undefined) result.retryAfterMs = retryAfterMs;
          }
          resolve(result);
        },
        onResponseError(_controller, error) {
          resolve({ ok: false, statusCode: null, error: errorText(error) });
        },
      };
      try {
        this.agent.dispatch(
          { origin: target.origin, path: target.path, method: "POST", headers, body, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs },
          handler,
        );
      } catch (error) {
        resolve({ ok: false, statusCode: null, error: errorText(error) });
      }
    });
  }

  /** The parsed URL and the fixed headers of an endpoint, built once per endpoint object. */
  private targetOf(endpoint: HttpEndpoint): Target {
    let target = this.targets.get(endpoint);
    if (!target) {
      const url = new URL(endpoint.url);
      const headers: string[] = [];
      for (const [name, value] of Object.entries(endpoint.headers ?? {})) headers.push(name, value);
      headers.push("content-type", "application/json", "user-agent", "tidings");
      target = { origin: url.origin, path: `${url.pathname}${url.search}`, headers };
      this.targets.set(endpoint, target);
    }
    return target;
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
