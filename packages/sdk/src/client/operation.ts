import type { ApiBody, ApiMethod, ApiParams, ApiPath, ApiSuccess } from "./apiTypes.ts";
import { call, type CallFlags, type HttpMethod, type RawJson, type ResolvedHttpOptions } from "./http.ts";

/** What an operation answers: its JSON, or nothing (204). */
export type Answered<T> = [T] extends [never] ? undefined : T;

/** Query values as the service reads them (text); those left unset are not sent. */
export type QueryValues = Record<string, string | number | boolean | Date | null | undefined>;

/** `?a=1&b=x` of the values that are set, or "" when none is. */
export function queryString(query: QueryValues = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue;
    params.set(name, value instanceof Date ? value.toISOString() : String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** `/v1/alerts/{id}` with `{ id: "7" }` → `/v1/alerts/7`, each value escaped. */
function fillPath(template: string, params: Record<string, string | number>): string {
  return template.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`${template} needs ${name}`);
    return encodeURIComponent(String(value));
  });
}

/**
 * One call of an API operation, typed from the service's document (openapi.ts): the path must
 * be one of its paths for that method, its parameters, body and answer are that operation's.
 */
export function operation<M extends ApiMethod, P extends ApiPath<M>>(
  o: ResolvedHttpOptions,
  method: M,
  template: P,
  parts: { params?: ApiParams<M, P>; query?: QueryValues; body?: ApiBody<M, P> | RawJson },
  flags: CallFlags = {},
): Promise<Answered<ApiSuccess<M, P>>> {
  const path = fillPath(template, (parts.params ?? {}) as Record<string, string | number>) + queryString(parts.query);
  return call(o, method.toUpperCase() as HttpMethod, path, parts.body, flags);
}

/** `operation` of a read whose 404 means "there is none": null then. */
export function find<M extends ApiMethod, P extends ApiPath<M>>(
  o: ResolvedHttpOptions,
  method: M,
  template: P,
  parts: { params?: ApiParams<M, P>; query?: QueryValues },
): Promise<Answered<ApiSuccess<M, P>> | null> {
  return operation(o, method, template, parts, { idempotent: true, notFoundIsNull: true });
}
