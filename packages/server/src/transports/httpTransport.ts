import { Deadlines, type Tracked } from "./deadlines.ts";
import { Agent, type Dispatcher } from "undici";
import { formatDuration } from "../domain/duration.ts";
import type { AddressJudge } from "../domain/networkPolicy.ts";
import { storableText } from "../domain/storableText.ts";
import type { HttpEndpoint } from "../domain/subscription.ts";
import { guardedConnector, NetworkPolicyError } from "./guardedConnect.ts";
import { signWebhook } from "./signature.ts";
import type { Outgoing, SendResult, Transport } from "./transport.ts";

/** The longest error text kept for an attempt or a check (receivers' bodies are cut to it). */
export const ERROR_TEXT_LIMIT = 500;
/** More than this from an endpoint's answer and the request is aborted: it is not a webhook answer. */
export const ANSWER_LIMIT_BYTES = 1_048_576;
/** A check-back answer is a small JSON object; more than this is refused unread. */
export const CHECK_ANSWER_LIMIT_BYTES = 65_536;

/** An error as storable attempt text: the policy's refusal as it is, others with their code. */
export const errorText = (error: unknown): string => {
  const err = error as Error & { code?: string };
  const text = err instanceof NetworkPolicyError ? err.message : `${err.code ?? err.name}: ${err.message}`;
  return storableText(text, ERROR_TEXT_LIMIT);
};

/** The Standard Webhooks headers of a signed POST, as name, value, name, value... */
function signedHeaders(secret: string, id: string, body: string): string[] {
  const timestamp = Math.floor(Date.now() / 1000);
  return ["webhook-id", id, "webhook-timestamp", String(timestamp), "webhook-signature", signWebhook(secret, id, timestamp, body)];
}

/** name, value, name, value... as [name, value] pairs. */
function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

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

/** What one exchange gives back: the status and the kept part of the body, or why it failed. */
interface Exchange {
  statusCode: number | null;
  /** Up to `keep` bytes of the body (for a 2xx only when `keepOk`). */
  body: Buffer | null;
  retryAfter?: string | string[] | undefined;
  error: string | null;
  aborted?: boolean;
}

interface ExchangeOptions {
  /** Bytes of the body to keep. */
  keep: number;
  /** Keep the body of a 2xx too (check-back answers); deliveries drop it as it arrives. */
  keepOk: boolean;
  /** A body longer than this aborts the request. */
  limit: number;
  /** Shutdown: abort and give up. */
  signal?: AbortSignal | undefined;
}

/**
 * Delivers over HTTP POST with Standard Webhooks headers, on pooled keep-alive connections
 * whose addresses pass the endpoint network policy when they connect. Every exchange (delivery
 * or check-back) has one overall deadline, counted from when it is sent: undici's headers
 * timeout ends one whose answer does not start in time, and an answer still coming in when
 * its headers have been read (rare: a webhook answer arrives whole) is tracked by the
 * deadline sweep, because undici's body timeout is a per-chunk idle timeout that an endpoint
 * dripping its answer never trips. Exchanges are not tracked from the start: holding every
 * exchange in flight in one long-lived set made each request's objects outlive young-generation
 * collections, and cost the deliver workload about 10% of its rate in garbage collection.
 *
 * Each abort signal (the dispatcher's, the check-back scheduler's) gets its own connection
 * pool, destroyed when the signal aborts: every exchange of that caller ends at once, those
 * still connecting or waiting for headers too.
 */
export class HttpTransport implements Transport<HttpEndpoint> {
  private readonly agent: Agent;
  private readonly agents = new WeakMap<AbortSignal, Agent>();
  private readonly allAgents = new Set<Agent>();
  private readonly targets = new WeakMap<HttpEndpoint, Target>();
  private readonly timeoutText: string;
  /** The deadline of answers still arriving after their headers, and their aborts at shutdown. */
  private readonly deadlines: Deadlines;

  constructor(
    private readonly timeoutMs: number,
    private readonly connectionsPerOrigin: number,
    private readonly judge: AddressJudge,
  ) {
    this.agent = this.newAgent();
    this.timeoutText = `timeout after ${formatDuration(timeoutMs)}`;
    this.deadlines = new Deadlines(timeoutMs);
  }

  private newAgent(): Agent {
    const agent = new Agent({
      connections: this.connectionsPerOrigin,
      keepAliveTimeout: 30_000,
      connect: guardedConnector(this.judge, Math.min(this.timeoutMs, 10_000)),
    });
    this.allAgents.add(agent);
    return agent;
  }

  /** The connection pool of a caller's exchanges: destroyed, ending them all, when its signal aborts. */
  private agentFor(signal: AbortSignal | undefined): Agent {
    if (!signal) return this.agent;
    let agent = this.agents.get(signal);
    if (!agent) {
      const own = this.newAgent();
      this.agents.set(signal, own);
      signal.addEventListener("abort", () => void own.destroy().catch(() => {}), { once: true });
      agent = own;
    }
    return agent;
  }

  /** One delivery; a 2xx body is dropped as it arrives, at most ERROR_TEXT_LIMIT bytes of any other are kept. */
  async send(endpoint: HttpEndpoint, { delivery, body, secret, signal, subscription, trace }: Outgoing): Promise<SendResult> {
    const target = this.targetOf(endpoint);
    const id = delivery.message.id;
    const headers = target.headers.concat(signedHeaders(secret, id, body), "tidings-attempt", String(delivery.attempt));
    if (subscription !== undefined) headers.push("tidings-subscription", subscription);
    if (trace) for (const name in trace) headers.push(name, trace[name]!);
    const x = await this.exchange(target.origin, target.path, headers, body, { keep: ERROR_TEXT_LIMIT, keepOk: false, limit: ANSWER_LIMIT_BYTES, signal });
    if (x.aborted) return { ok: false, statusCode: null, error: x.error, aborted: true };
    if (x.error !== null) return { ok: false, statusCode: x.statusCode, error: x.error };
    const statusCode = x.statusCode!;
    if (statusCode >= 200 && statusCode < 300) return { ok: true, statusCode, error: null };
    const text = x.body ? x.body.toString("utf8") : "";
    const result: SendResult = { ok: false, statusCode, error: storableText(`HTTP ${statusCode}${text ? `: ${text}` : ""}`, ERROR_TEXT_LIMIT) };
    if (statusCode === 429 || statusCode === 503) {
      const retryAfterMs = parseRetryAfter(x.retryAfter);
      if (retryAfterMs !== undefined) result.retryAfterMs = retryAfterMs;
    }
    return result;
  }

  /**
   * POSTs a signed JSON body (a check-back) and reads at most CHECK_ANSWER_LIMIT_BYTES of the
   * answer within the deadline. Never throws.
   */
  async call(url: string, secret: string, id: string, body: string, extraHeaders: Record<string, string>, signal?: AbortSignal) {
    return this.post(url, { ...extraHeaders, ...Object.fromEntries(pairs(signedHeaders(secret, id, body))) }, body, signal);
  }

  /**
   * POSTs a JSON body with the given headers (a notification) and reads at most
   * CHECK_ANSWER_LIMIT_BYTES of the answer within the deadline. Never throws.
   */
  async post(url: string, extraHeaders: Record<string, string>, body: string, signal?: AbortSignal) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return { statusCode: null, text: "", error: `"${storableText(url, 200)}" is not a URL` };
    }
    const headers: string[] = [];
    for (const [name, value] of Object.entries(extraHeaders)) headers.push(name, value);
    headers.push("content-type", "application/json", "user-agent", "tidings");
    const x = await this.exchange(parsed.origin, `${parsed.pathname}${parsed.search}`, headers, body, {
      keep: CHECK_ANSWER_LIMIT_BYTES,
      keepOk: true,
      limit: CHECK_ANSWER_LIMIT_BYTES,
      signal,
    });
    return { statusCode: x.statusCode, text: x.body ? x.body.toString("utf8") : "", error: x.error, aborted: x.aborted === true };
  }

  /**
   * One POST through `dispatch()` with a small handler (no body stream per response), bounded
   * by the overall deadline, the body limit and the shutdown signal, whichever comes first.
   */
  private exchange(origin: string, path: string, headers: string[], body: string, o: ExchangeOptions): Promise<Exchange> {
    return new Promise<Exchange>((resolve) => {
      const x = new ExchangeHandler(o, this.timeoutText, this.deadlines, resolve, Math.ceil(performance.now()) + this.timeoutMs);
      if (o.signal?.aborted) return x.abort();
      try {
        this.agentFor(o.signal).dispatch({ origin, path, method: "POST", headers, body, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs }, x);
      } catch (error) {
        x.finish({ statusCode: null, body: null, error: errorText(error) });
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

  /** Closes pooled connections; with `force`, requests still running are cut (shutdown past its deadline). */
  close(force = false): Promise<void> {
    // Deadlines keep running until the agents are closed (its timer does not hold the process).
    const agents = [...this.allAgents];
    return Promise.allSettled(agents.map((a) => (force ? a.destroy() : a.close()))).then(() => this.deadlines.close());
  }
}

/**
 * One exchange: undici's handler, and, once its answer has started but not ended, what the
 * deadline sweep ends. One object per request: the deliver path makes one for every delivery.
 */
class ExchangeHandler implements Dispatcher.DispatchHandler, Tracked {
  /** Kept only while tracked: the one request that may need aborting from outside. */
  private controller: Dispatcher.DispatchController | null = null;
  private tracked = false;
  private statusCode: number | null = null;
  private retryAfter: string | string[] | undefined;
  private kept: Buffer[] | null = null;
  private keptBytes = 0;
  private bytes = 0;
  private settled = false;

  get signal(): AbortSignal | undefined {
    return this.o.signal;
  }

  constructor(
    private readonly o: ExchangeOptions,
    private readonly timeoutText: string,
    private readonly deadlines: Deadlines,
    private readonly resolve: (x: Exchange) => void,
    /** When it must have ended (performance.now() ms). */
    public deadlineAt: number,
  ) {}

  finish(x: Exchange, abort?: Error, controller = this.controller): void {
    if (this.settled) return;
    this.settled = true;
    if (this.tracked) this.deadlines.done(this);
    this.controller = null;
    if (abort && controller && !controller.aborted) controller.abort(abort);
    this.resolve(x);
  }

  private timedOut(controller: Dispatcher.DispatchController): boolean {
    if (performance.now() <= this.deadlineAt) return false;
    this.finish({ statusCode: this.statusCode, body: null, error: this.timeoutText }, new Error(this.timeoutText), controller);
    return true;
  }

  /** Runs after the parser's pass that read the headers: an answer not ended by then is tracked. */
  private track(): void {
    if (this.settled) return;
    this.tracked = true;
    this.deadlines.add(this);
  }

  // Tracked: the deadline passed with the answer still coming in.
  expire(): void {
    this.finish({ statusCode: this.statusCode, body: null, error: this.timeoutText }, new Error(this.timeoutText));
  }

  abort(): void {
    this.finish({ statusCode: this.statusCode, body: null, error: "aborted: the service is shutting down", aborted: true }, new Error("shutting down"));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (this.settled) controller.abort(new Error("the exchange was given up"));
  }

  onResponseStart(controller: Dispatcher.DispatchController, code: number, headers: Record<string, string | string[] | undefined>): void {
    this.statusCode = code;
    if (this.timedOut(controller)) return;
    this.controller = controller;
    queueMicrotask(() => this.track());
    const ok = code >= 200 && code < 300;
    if (!ok || this.o.keepOk) this.kept = [];
    if (!ok) this.retryAfter = headers["retry-after"];
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.bytes > this.o.limit) {
      this.finish(
        { statusCode: this.statusCode, body: null, error: `HTTP ${this.statusCode}: the answer is longer than ${this.o.limit} bytes` },
        new Error("answer too long"),
        controller,
      );
      return;
    }
    if (this.timedOut(controller)) return;
    if (this.kept && this.keptBytes < this.o.keep) {
      this.kept.push(chunk);
      this.keptBytes += chunk.length;
    }
  }

  onResponseEnd(): void {
    const all = this.kept ? Buffer.concat(this.kept) : null;
    this.finish({
      statusCode: this.statusCode,
      body: all && all.length > this.o.keep ? all.subarray(0, this.o.keep) : all,
      retryAfter: this.retryAfter,
      error: null,
    });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    // Its pool destroyed because its caller aborted (shutdown): given up, not failed.
    if (this.o.signal?.aborted) {
      this.abort();
      return;
    }
    this.finish({ statusCode: null, body: null, error: errorText(error) });
  }
}
