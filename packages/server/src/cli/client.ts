/**
 * The HTTP client of the commands that call a running service's API (every command but serve,
 * migrate, relay, reconcile and listen), with an app's key, an operator's or the admin key.
 */

/** A failure to show the operator as is (exit 1); `status` is the service's answer, if it gave one. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown> & { error?: { message?: string; field?: string } };
}

export type Call = (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<Answer>;

/** Each call is answered at once (the job commands ask with `Prefer: wait=0` or start a job, and poll). */
const CALL_TIMEOUT_MS = 30_000;

/** The largest answer a command reads (the service's pages stay under 4 MiB by default). */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/** Where the service is when neither --url nor TIDINGS_URL says. */
export const DEFAULT_URL = "http://127.0.0.1:7400";

/** A path with a query string of the values given (undefined ones left out). */
export function withQuery(path: string, query: Record<string, string | number | undefined>): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value !== undefined) params.set(name, String(value));
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

export function client(url: string, key: string): Call {
  return async (method, path, body, headers = {}) => {
    let response: Response;
    try {
      response = await fetch(new URL(path, url), {
        method,
        // One deadline per call: a service that stops answering ends the command instead of hanging it.
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
        headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new CommandError(`cannot reach ${url}: ${(error as Error).cause ?? (error as Error).message}`);
    }
    const text = await answerText(response, method, path);
    let parsed: Answer["body"];
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      throw new CommandError(`${method} ${path}: the service answered ${response.status} with no JSON`, response.status);
    }
    if (response.status >= 400) {
      const e = parsed.error;
      throw new CommandError(`${method} ${path}: ${response.status} ${e?.message ?? ""}${e?.field ? ` (field ${e.field})` : ""}`, response.status);
    }
    return { status: response.status, headers: response.headers, body: parsed };
  };
}

/** The answer's text, at most MAX_ANSWER_BYTES of it: a longer one is not read on, and the command fails. */
async function answerText(response: Response, method: string, path: string): Promise<string> {
  const tooLarge = () => new CommandError(`${method} ${path}: the service's answer is larger than ${MAX_ANSWER_BYTES} bytes`, response.status);
  if (Number(response.headers.get("content-length") ?? 0) > MAX_ANSWER_BYTES) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (!response.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      // Leaving the loop cancels the stream: nothing more is read.
      if (size > MAX_ANSWER_BYTES) throw tooLarge();
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof CommandError) throw error;
    throw new CommandError(`${method} ${path}: the answer was cut off: ${(error as Error).message}`, response.status);
  }
  return Buffer.concat(chunks, size).toString("utf8");
}

/** A subscription's path in the API. */
export const subscriptionPath = (name: string): string => `/v1/subscriptions/${encodeURIComponent(name)}`;

/** A call about one thing named, its 404 said plainly (`no subscription named x`). */
export async function about<T>(what: string, name: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof CommandError && error.status === 404) throw new CommandError(`no ${what} named ${name}`, 404);
    throw error;
  }
}

/** A call about one subscription, its 404 said plainly. */
export const aboutSubscription = <T>(name: string, call: () => Promise<T>): Promise<T> => about("subscription", name, call);
