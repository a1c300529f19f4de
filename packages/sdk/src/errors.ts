/** Stable codes of every error the SDK throws; match on `code`, never on the message. */
export type TidingsErrorCode =
  | "invalid_request"
  | "invalid_message"
  | "invalid_signature"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "payload_too_large"
  | "rate_limited"
  | "unavailable"
  | "server_error"
  | "network"
  | "timeout"
  | "config";

/**
 * Every `error.code` the service answers with, as `serviceCode` carries it: finer than `code`
 * (`app_disabled` is a `forbidden`, `too_many_requests` a `rate_limited`). The service's own
 * list is the same (a test compares them), and so is its API document's.
 */
export const SERVICE_ERROR_CODES = [
  "invalid_request",
  "invalid_json",
  "payload_too_large",
  "unauthorized",
  "forbidden",
  "app_disabled",
  "not_found",
  "conflict",
  "too_many_requests",
  "unavailable",
  "audit_failed",
  "uri_too_long",
  "unsupported_media_type",
  "request_timeout",
  "headers_too_large",
  "internal",
] as const;
export type ServiceErrorCode = (typeof SERVICE_ERROR_CODES)[number];

const RETRYABLE: ReadonlySet<TidingsErrorCode> = new Set(["rate_limited", "unavailable", "server_error", "network", "timeout"]);

/** The one error family of the SDK: a stable code, the HTTP status when there was one, and the cause. */
export class TidingsError extends Error {
  override readonly name = "TidingsError";
  readonly code: TidingsErrorCode;
  /** HTTP status of the service's answer, when the error came from one. */
  readonly status: number | undefined;
  /** The request field the service or the SDK named, e.g. `messages[3].topic`. */
  readonly field: string | undefined;
  /**
   * The code the service answered with (`app_disabled`, `too_many_requests`, …); undefined when
   * the error did not come from its answer, and as the service sent it when it is one this SDK
   * does not know yet.
   */
  readonly serviceCode: ServiceErrorCode | (string & {}) | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: TidingsErrorCode,
    message: string,
    options: { status?: number; field?: string; serviceCode?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
    this.field = options.field;
    this.serviceCode = options.serviceCode;
    this.details = options.details;
  }

  /** Whether the same call may succeed later unchanged (network trouble, 5xx, 429). */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}

const BY_STATUS: Record<number, TidingsErrorCode> = {
  400: "invalid_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  413: "payload_too_large",
  415: "invalid_request",
  422: "invalid_request",
  429: "rate_limited",
  503: "unavailable",
};

/** Maps a service answer `{"error":{code,message,field}}` with its status to a TidingsError, in one place. */
export function errorFromResponse(status: number, body: unknown): TidingsError {
  const error = (body as { error?: { code?: unknown; message?: unknown; field?: unknown } } | null)?.error;
  const message = typeof error?.message === "string" ? error.message : `the service answered HTTP ${status}`;
  const code = BY_STATUS[status] ?? (status >= 500 ? "server_error" : "invalid_request");
  const { message: _m, field: _f, ...details } = (error ?? {}) as Record<string, unknown>;
  return new TidingsError(code, message, {
    status,
    field: typeof error?.field === "string" ? error.field : undefined,
    serviceCode: typeof error?.code === "string" ? error.code : undefined,
    details,
  });
}
