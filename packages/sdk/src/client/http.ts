import { errorFromResponse, TidingsError } from "../errors.ts";

export interface HttpOptions {
  /** The service's base URL, e.g. http://127.0.0.1:7400 */
  url: string;
  /** An app's API key (or the admin key). */
  apiKey: string;
  /** Per-request timeout; default 10 s. */
  timeoutMs?: number;
  /** Extra tries of an idempotent call after a network error, timeout or 5xx/429; default 2. */
  retries?: number;
  fetch?: typeof fetch;
}

export interface ResolvedHttpOptions {
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly fetch: typeof fetch;
}

export function resolveHttpOptions(options: HttpOptions): ResolvedHttpOptions {
  if (!options.url) throw new TidingsError("config", "the service url is required");
  if (!options.apiKey) throw new TidingsError("config", "an API key is required");
  return {
    baseUrl: options.url.replace(/\/+$/, ""),
    apiKey: options.apiKey,
    timeoutMs: options.timeoutMs ?? 10_000,
    retries: options.retries ?? 2,
    fetch: options.fetch ?? globalThis.fetch,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One JSON call. Idempotent calls (GETs, and sends that carry their message ids) are retried
 * with growing pauses (100 ms, 400 ms, ...) after network errors, timeouts, 5xx and 429.
 * Resolves to `null` on 404 when `notFoundIsNull`.
 */
export async function call<T>(
  o: ResolvedHttpOptions,
  method: "GET" | "POST" | "PATCH" | "DELETE",
  path: string,
  body?: unknown,
  flags: { idempotent?: boolean; notFoundIsNull?: boolean } = {},
): Promise<T> {
  const tries = flags.idempotent ? o.retries + 1 : 1;
  for (let attempt = 1; ; attempt++) {
    try {
      return await once<T>(o, method, path, body, flags.notFoundIsNull ?? false);
    } catch (error) {
      if (!(error instanceof TidingsError) || !error.retryable || attempt >= tries) throw error;
      await sleep(100 * 4 ** (attempt - 1));
    }
  }
}

async function once<T>(o: ResolvedHttpOptions, method: string, path: string, body: unknown, notFoundIsNull: boolean): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${o.apiKey}`, accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response: Response;
  try {
    response = await o.fetch(o.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(o.timeoutMs),
    });
  } catch (error) {
    const name = (error as Error).name;
    if (name === "TimeoutError" || name === "AbortError") {
      throw new TidingsError("timeout", `${method} ${path}: no answer in ${o.timeoutMs} ms`, { cause: error });
    }
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new TidingsError("network", `${method} ${path}: ${cause?.code ?? cause?.message ?? (error as Error).message}`, { cause: error });
  }
  const text = await response.text().catch(() => "");
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (response.status === 404 && notFoundIsNull) return null as T;
  if (!response.ok) throw errorFromResponse(response.status, parsed);
  return parsed as T;
}
