import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { TidingsError, type ErrorCode } from "../domain/errors.ts";
import { isDataException, isDbUnavailable } from "../store/db.ts";

const STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  invalid_json: 400,
  payload_too_large: 413,
  unauthorized: 401,
  forbidden: 403,
  app_disabled: 403,
  not_found: 404,
  conflict: 409,
  too_many_requests: 429,
  unavailable: 503,
  // The change was made; its audit entry could not be written (see http/audit.ts).
  audit_failed: 500,
};

/** Codes answered here alone: failures met before a route runs, or outside every handler. */
const FRAMEWORK_STATUS = {
  uri_too_long: 414,
  unsupported_media_type: 415,
  request_timeout: 408,
  headers_too_large: 431,
  internal: 500,
} as const;

/** Every `error.code` the service answers with (the SDK keeps the same list: test/apiTypes.test.ts). */
export type ServiceErrorCode = ErrorCode | keyof typeof FRAMEWORK_STATUS;
export const ERROR_CODES: readonly ServiceErrorCode[] = [
  ...(Object.keys(STATUS) as ErrorCode[]),
  ...(Object.keys(FRAMEWORK_STATUS) as Array<keyof typeof FRAMEWORK_STATUS>),
];

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** `/endpoint/url` + missing `x` → `endpoint.url`, `endpoint.x`. */
function fieldOf(e: AjvError): string {
  const path = e.instancePath
    .split("/")
    .filter(Boolean)
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
    .join("")
    .replace(/^\./, "");
  const extra = (e.params.missingProperty ?? e.params.additionalProperty) as string | undefined;
  return extra ? (path ? `${path}.${extra}` : extra) : path;
}

function describe(e: AjvError, field: string): string {
  if (e.keyword === "required") return `${field} is required`;
  if (e.keyword === "additionalProperties") return `${field} is not a known field`;
  return `${field || "body"} ${e.message ?? "is invalid"}`;
}

/** Maps every error to `{"error":{"code","message","field"?}}` with its status, in one place. */
export function errorHandler(error: FastifyError | TidingsError, request: FastifyRequest, reply: FastifyReply): void {
  if (error instanceof TidingsError) {
    const retryAfter = error.details?.retryAfterSeconds;
    if (typeof retryAfter === "number") void reply.header("retry-after", String(retryAfter));
    void reply.status(STATUS[error.code]).send({
      error: { code: error.code, message: error.message, ...(error.field ? { field: error.field } : {}), ...error.details },
    });
    return;
  }
  const e = error as FastifyError;
  if (e.validation && e.validation.length > 0) {
    const first = e.validation[0] as unknown as AjvError;
    const context = e.validationContext === "body" ? "" : `${e.validationContext}.`;
    const field = `${context}${fieldOf(first)}`.replace(/\.$/, "");
    void reply.status(400).send({ error: { code: "invalid_request", message: describe(first, field), field } });
    return;
  }
  switch (e.code) {
    case "FST_ERR_BAD_URL":
      void reply.status(400).send({ error: { code: "invalid_request", message: "the URL has an invalid percent-escape", field: "url" } });
      return;
    case "FST_ERR_MAX_PARAM_LENGTH":
      void reply
        .status(FRAMEWORK_STATUS.uri_too_long)
        .send({ error: { code: "uri_too_long", message: "a path segment is longer than the limit", field: "url" } });
      return;
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      void reply.status(413).send({ error: { code: "payload_too_large", message: "the request body is larger than the limit" } });
      return;
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      void reply.status(FRAMEWORK_STATUS.unsupported_media_type).send({ error: { code: "unsupported_media_type", message: "send application/json" } });
      return;
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      void reply.status(400).send({ error: { code: "invalid_json", message: "the body is empty; send a JSON object" } });
      return;
  }
  if (e.statusCode === 400 && (e instanceof SyntaxError || /JSON/i.test(e.message))) {
    void reply.status(400).send({ error: { code: "invalid_json", message: `the body is not valid JSON: ${e.message}` } });
    return;
  }
  if (isDataException(error)) {
    // PostgreSQL refused a value the request carried (a NUL in text, a number or date out of
    // range): the client's input, not a fault of the service.
    void reply.status(400).send({ error: { code: "invalid_request", message: `a value in the request cannot be stored: ${e.message}` } });
    return;
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
    void reply.status(e.statusCode).send({ error: { code: "invalid_request", message: e.message } });
    return;
  }
  if (isDbUnavailable(error)) {
    // No connection free in time, statement_timeout, database away: the client may retry.
    void reply
      .status(503)
      .header("retry-after", "1")
      .send({ error: { code: "unavailable", message: "the database is busy or away; try again shortly" } });
    return;
  }
  request.log.error({ err: error }, "request failed");
  void reply.status(FRAMEWORK_STATUS.internal).send({ error: { code: "internal", message: "internal error" } });
}

/**
 * Errors Node's HTTP parser raises before there is a request to answer (malformed HTTP, an
 * unknown method, headers over the limit, a request not received within the request timeout):
 * answered in our shape on the raw socket, which is then closed.
 */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const [status, code, message]: [number, ServiceErrorCode, string] =
    error.code === "HPE_HEADER_OVERFLOW"
      ? [FRAMEWORK_STATUS.headers_too_large, "headers_too_large", "the request's headers are larger than the limit"]
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [FRAMEWORK_STATUS.request_timeout, "request_timeout", "the request was not received within the request timeout"]
        : [400, "invalid_request", "the request is not valid HTTP"];
  // Only when nothing was written yet: a reply half sent cannot be followed by another.
  if (socket.writable && socket.bytesWritten === 0) {
    const body = JSON.stringify({ error: { code, message } });
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
