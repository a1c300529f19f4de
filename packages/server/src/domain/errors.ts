/** One error family with a stable code; the HTTP layer maps it to a status in one place. */
export type ErrorCode =
  | "invalid_request"
  | "invalid_json"
  | "payload_too_large"
  | "unauthorized"
  | "forbidden"
  | "app_disabled"
  | "not_found"
  | "conflict"
  | "too_many_requests"
  | "unavailable"
  | "audit_failed";

export class TidingsError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options);
    this.details = options?.details;
  }
  readonly details: Record<string, unknown> | undefined;
  get retryable(): boolean {
    return this.code === "unavailable";
  }
}

export const invalid = (field: string, message: string) => new TidingsError("invalid_request", message, field);
export const notFound = (what: string) => new TidingsError("not_found", `${what} not found`);
export const conflict = (message: string, details?: Record<string, unknown>) => new TidingsError("conflict", message, undefined, { details });
export const forbidden = (message: string) => new TidingsError("forbidden", message);
/** A disabled app's key: known, but refused until an admin enables the app again. */
export const appDisabled = (app: string) => new TidingsError("app_disabled", `the app ${app} is disabled: its key is refused until an admin enables it again`);
/** Too many failed attempts from one client: `retryAfterSeconds` tells when to try again. */
export const tooManyRequests = (message: string, retryAfterSeconds: number) =>
  new TidingsError("too_many_requests", message, undefined, { details: { retryAfterSeconds } });
/** Not now (the database is slow or away, a queue is full): `retryAfterSeconds` tells when to try again. */
export const unavailable = (message: string, retryAfterSeconds: number) =>
  new TidingsError("unavailable", message, undefined, { details: { retryAfterSeconds } });

/**
 * The field a database's refusal of a message's content most likely names, from its message
 * (a safety net: the checks before storing name the field exactly).
 */
export function fieldOfRefusal(message: string): string {
  if (/timestamp|date|time zone/i.test(message)) return "deliverAt";
  if (/interval/i.test(message)) return "checkAfter";
  return "payload";
}
