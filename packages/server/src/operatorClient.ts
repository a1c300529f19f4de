/**
 * The HTTP client of the operators' commands (`tidings retry-pending`, `recover`,
 * `subscriptions`, `subscription`): a running service's API, with the admin key.
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

/** Each call is answered at once (`recover` asks with `Prefer: wait=0` and polls). */
const CALL_TIMEOUT_MS = 30_000;

/** The service's address: --url, else TIDINGS_URL, else the default port on this host. */
export const serviceUrl = (given: string | undefined, env: NodeJS.ProcessEnv): string => given ?? env.TIDINGS_URL ?? "http://127.0.0.1:7400";

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
    const text = await response.text();
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

/** A subscription's path in the API. */
export const subscriptionPath = (name: string): string => `/v1/subscriptions/${encodeURIComponent(name)}`;

/** A call about one subscription, its 404 said plainly (the API's answer names the route instead). */
export async function aboutSubscription<T>(name: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof CommandError && error.status === 404) throw new CommandError(`no subscription named ${name}`, 404);
    throw error;
  }
}
