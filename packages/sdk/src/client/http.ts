import { request } from "undici";
import { errorFromResponse, TidingsError } from "../errors.ts";

export interface HttpOptions {
  /** The service's base URL, e.g. http://127.0.0.1:7400 */
  url: string;
  /** An app's API key (or the admin key). */
  apiKey: string;
  /** Per-request timeout, the whole answer read included; default 10 s. */
  timeoutMs?: number;
  /**
   * The largest answer read, in bytes; default 64 MiB (the service's list and feed pages stay
   * under 4 MiB by default). A longer answer is not read on: the call fails with
   * `payload_too_large`, not retried.
   */
  maxAnswerBytes?: number;
  /** Extra tries of an idempotent call after a network error, timeout or 5xx/429; default 2. */
  retries?: number;
  /**
   * A `fetch` to send through instead (a proxy, a test that tampers with replies). By default
   * calls go through undici's `request()` on keep-alive connections, which costs a third of the
   * CPU of `fetch` per call.
   */
  fetch?: typeof fetch;
}

export interface ResolvedHttpOptions {
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly timeoutMs: number;
  readonly maxAnswerBytes: number;
  readonly retries: number;
  readonly fetch: typeof fetch | null;
}

export function resolveHttpOptions(options: HttpOptions): ResolvedHttpOptions {
  if (!options.url) throw new TidingsError("config", "the service url is required");
  if (!options.apiKey) throw new TidingsError("config", "an API key is required");
  return {
    baseUrl: options.url.replace(/\/+$/, ""),
    apiKey: options.apiKey,
    timeoutMs: options.timeoutMs ?? 10_000,
    maxAnswerBytes: options.maxAnswerBytes ?? 64 * 1024 * 1024,
    retries: options.retries ?? 2,
    fetch: options.fetch ?? null,
  };
}

/** A request body already written as JSON text (sent as it is). */
export class RawJson {
  constructor(readonly text: string) {}
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export type HttpMethod = "GET" | "POST" | "PATCH" | "DELETE";

/** How one call is made: retried (idempotent), 404 as null, extra headers, its own deadline. */
export interface CallFlags {
  idempotent?: boolean;
  notFoundIsNull?: boolean;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

/**
 * One JSON call. Idempotent calls (GETs, and sends that carry their message ids) are retried
 * with growing pauses (100 ms, 400 ms, ...) after network errors, timeouts, 5xx and 429.
 * Resolves to `null` on 404 when `notFoundIsNull`.
 */
export async function call<T>(o: ResolvedHttpOptions, method: HttpMethod, path: string, body?: unknown, flags: CallFlags = {}): Promise<T> {
  const tries = flags.idempotent ? o.retries + 1 : 1;
  const options = flags.timeoutMs === undefined ? o : { ...o, timeoutMs: flags.timeoutMs };
  for (let attempt = 1; ; attempt++) {
    try {
      return await once<T>(options, method, path, body, flags.notFoundIsNull ?? false, flags.headers);
    } catch (error) {
      if (!(error instanceof TidingsError) || !error.retryable || attempt >= tries) throw error;
      await sleep(100 * 4 ** (attempt - 1));
    }
  }
}

interface RawResponse {
  status: number;
  text: string;
}

async function once<T>(
  o: ResolvedHttpOptions,
  method: string,
  path: string,
  body: unknown,
  notFoundIsNull: boolean,
  extraHeaders: Record<string, string> | undefined,
): Promise<T> {
  const headers: Record<string, string> = { ...extraHeaders, authorization: `Bearer ${o.apiKey}`, accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const payload = body === undefined ? undefined : body instanceof RawJson ? body.text : JSON.stringify(body);
  let response: RawResponse;
  try {
    response = o.fetch ? await viaFetch(o, o.fetch, method, path, headers, payload) : await viaUndici(o, method, path, headers, payload);
  } catch (error) {
    if (error instanceof TidingsError) throw error;
    const e = error as Error & { code?: string; cause?: { code?: string; message?: string } };
    const timedOut = e.name === "TimeoutError" || e.name === "AbortError" || e.code === "UND_ERR_ABORTED";
    if (timedOut || e.code === "UND_ERR_HEADERS_TIMEOUT" || e.code === "UND_ERR_BODY_TIMEOUT") {
      throw new TidingsError("timeout", `${method} ${path}: no answer in ${o.timeoutMs} ms`, { cause: error });
    }
    throw new TidingsError("network", `${method} ${path}: ${e.cause?.code ?? e.code ?? e.cause?.message ?? e.message}`, { cause: error });
  }
  let parsed: unknown = null;
  if (response.text) {
    try {
      parsed = JSON.parse(response.text);
    } catch {
      parsed = null;
    }
  }
  if (response.status === 404 && notFoundIsNull) return null as T;
  if (response.status < 200 || response.status >= 300) throw errorFromResponse(response.status, parsed);
  return parsed as T;
}

async function viaUndici(
  o: ResolvedHttpOptions,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: string | undefined,
): Promise<RawResponse> {
  // One deadline for the whole call: a service that answers a byte at a time is cut off too.
  const response = await request(o.baseUrl + path, {
    method: method as "GET",
    headers,
    body,
    headersTimeout: o.timeoutMs,
    bodyTimeout: o.timeoutMs,
    signal: AbortSignal.timeout(o.timeoutMs),
  });
  const length = Number(response.headers["content-length"]);
  return { status: response.statusCode, text: await readCapped(response.body, length, o.maxAnswerBytes, method, path) };
}

/**
 * The answer's text, reading at most `limit` bytes: past it (or when its content-length says it
 * would be), the rest is left unread and the call fails.
 */
async function readCapped(body: AsyncIterable<Uint8Array>, length: number, limit: number, method: string, path: string): Promise<string> {
  const tooLarge = () =>
    new TidingsError("payload_too_large", `${method} ${path}: the service's answer is larger than maxAnswerBytes (${limit} bytes)`, {
      details: { maxAnswerBytes: limit },
    });
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (Number.isFinite(length) && length > limit) {
    await closeUnread(body);
    throw tooLarge();
  }
  for await (const chunk of body) {
    size += chunk.byteLength;
    // Leaving the loop ends the stream: nothing more is read.
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString("utf8");
}

/** Ends a body without reading it. */
async function closeUnread(body: AsyncIterable<Uint8Array>): Promise<void> {
  await body[Symbol.asyncIterator]().return?.();
}

async function viaFetch(
  o: ResolvedHttpOptions,
  fetcher: typeof fetch,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: string | undefined,
): Promise<RawResponse> {
  const response = await fetcher(o.baseUrl + path, { method, headers, body, signal: AbortSignal.timeout(o.timeoutMs) });
  if (!response.body) return { status: response.status, text: "" };
  const length = Number(response.headers.get("content-length") ?? Number.NaN);
  return { status: response.status, text: await readCapped(response.body as unknown as AsyncIterable<Uint8Array>, length, o.maxAnswerBytes, method, path) };
}
