import type { IncomingMessage, ServerResponse } from "node:http";
import { Webhook } from "standardwebhooks";
import { TidingsError } from "../errors.ts";
import type { Executor } from "../executor/executor.ts";
import { fastifyPlugin, honoHandler, nodeHandler, type FastifyLike } from "../receiver/mounts.ts";
import type { RawDelivery, Receiver } from "../receiver/receiver.ts";
import { databaseIdentity, decide, DEFAULT_LOCK_TIMEOUT_MS, hasIntent, type CheckAnswer } from "../transaction/barrier.ts";

export interface CheckBackHandlerOptions {
  /** The app's check-back signing secret (`whsec_...`), or several (rotation). */
  secret: string | readonly string[];
  /**
   * How long a check waits behind a local transaction still holding the message's barrier key
   * before answering unknown (the service asks again later); default 5000 ms, whole seconds on
   * MySQL. Keep it under the service's TIDINGS_DELIVERY_TIMEOUT (10 s).
   */
  lockTimeoutMs?: number;
  /** Told of each outcome (for logs and metrics); an exception thrown here is ignored. */
  onEvent?: (event: CheckBackEvent) => void;
}

export type CheckBackEvent =
  | { type: "answered"; id: string; status: CheckAnswer; check: number | null }
  | { type: "rejected"; status: number; reason: string; id?: string }
  | { type: "failed"; id: string; error: unknown };

/** What to answer the service. */
export interface CheckBackAnswer {
  status: number;
  body: { status: CheckAnswer } | { error: { code: string; message: string } };
}

/** The service's check-back request: `{"id","topic","tag","key","payload","checks"}`, and `"context"` when the prepare sent one. */
export interface CheckRequest {
  id: string;
  /** The message's check context: the identity of the database whose `transaction()` prepared it; null: none (an older SDK's message). */
  context: string | null;
  topic: string | null;
  tag: string | null;
  key: string | null;
  payload: unknown;
  checks: number | null;
}

/** The check-back endpoint: a framework-free core and mounts, in the receiver's style. */
export interface CheckBackHandler {
  /** Verify, parse, decide from the barrier table, and say what to answer. */
  receive(request: RawDelivery): Promise<CheckBackAnswer>;
  /** A web-standard handler: Hono, Bun, Deno, Next.js route handlers, `fetch`-style servers. */
  fetch(request: Request): Promise<Response>;
  /** For Node's `http` and Express: `http.createServer(h.node)`, `app.post(path, h.node)` (before express.json()). */
  readonly node: (req: IncomingMessage & { body?: unknown }, res: ServerResponse) => void;
  /** A Fastify plugin: `app.register(h.fastify("/tidings/check"))` (raw body in its own context). */
  fastify(path: string): (instance: FastifyLike) => Promise<void>;
  /** For Hono: `app.post("/tidings/check", h.hono)`. */
  readonly hono: (c: { req: { raw: Request } }) => Promise<Response>;
}

function headerRecord(headers: RawDelivery["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers instanceof Headers) {
    headers.forEach((value, name) => {
      out[name.toLowerCase()] = value;
    });
    return out;
  }
  for (const [name, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (value !== undefined) out[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

const reject = (status: number, code: string, message: string): CheckBackAnswer => ({ status, body: { error: { code, message } } });

/** Parses the check body; throws a message saying what is wrong. */
export function parseCheckRequest(body: string): CheckRequest {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new Error("the body is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("the body is not a JSON object");
  const v = value as Record<string, unknown>;
  if (typeof v.id !== "string" || v.id.length < 1 || v.id.length > 200) throw new Error("id must be a string of 1 to 200 characters");
  if (v.context !== undefined && (typeof v.context !== "string" || v.context.length < 1 || v.context.length > 200)) {
    throw new Error("context must be a string of 1 to 200 characters");
  }
  const text = (x: unknown) => (typeof x === "string" ? x : null);
  return {
    id: v.id,
    context: text(v.context),
    topic: text(v.topic),
    tag: text(v.tag),
    key: text(v.key),
    payload: v.payload,
    checks: typeof v.checks === "number" && Number.isInteger(v.checks) ? v.checks : null,
  };
}

/**
 * Answers the service's check-backs for messages sent with `transaction()` on `db`, from the
 * barrier table, with no user code: 200 `{"status":"commit"|"rollback"|"unknown"}`. 401 for a
 * bad or missing signature (or a timestamp over 5 minutes off), 400 for a malformed body or a
 * body whose id is not the webhook-id, 404 for a message this database never ran a
 * `transaction()` for, 405 for another method, 500 when the database failed — none of which
 * writes anything. Only a verified check of a known message may insert a rollback barrier.
 */
export function createCheckBackHandler(db: Executor, options: CheckBackHandlerOptions): CheckBackHandler {
  const secrets = typeof options.secret === "string" ? [options.secret] : [...options.secret];
  if (secrets.length === 0 || secrets.some((s) => !s)) throw new TidingsError("config", "the check-back handler needs the app's signing secret");
  const verifiers = secrets.map((s) => new Webhook(s));
  const lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const emit = (event: CheckBackEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // observers never break the handler
    }
  };
  const refuse = (status: number, code: string, message: string, id?: string): CheckBackAnswer => {
    emit({ type: "rejected", status, reason: message, ...(id === undefined ? {} : { id }) });
    return reject(status, code, message);
  };

  async function receive(request: RawDelivery): Promise<CheckBackAnswer> {
    const headers = headerRecord(request.headers);
    if (!headers["webhook-id"] || !headers["webhook-timestamp"] || !headers["webhook-signature"]) {
      return refuse(401, "invalid_signature", "webhook-id, webhook-timestamp and webhook-signature are required");
    }
    let verified = false;
    let why = "";
    for (const verifier of verifiers) {
      try {
        verifier.verify(request.body, headers, { jsonParse: false });
        verified = true;
        break;
      } catch (error) {
        why = (error as Error).message;
      }
    }
    if (!verified) return refuse(401, "invalid_signature", why || "the signature does not match");
    let check: CheckRequest;
    try {
      check = parseCheckRequest(request.body);
    } catch (error) {
      return refuse(400, "invalid_request", (error as Error).message);
    }
    if (check.id !== headers["webhook-id"]) return refuse(400, "invalid_request", "the body's id is not the webhook-id", check.id);
    try {
      // A message with a context is this database's when the context is its identity; one without
      // (prepared by an older SDK) when its intent was recorded here.
      const ours = check.context !== null ? check.context === (await databaseIdentity(db)) : await hasIntent(db, check.id);
      if (!ours) return refuse(404, "unknown_message", `no transaction() ran for message ${check.id} on this database`, check.id);
      const status = await decide(db, check.id, lockTimeoutMs);
      emit({ type: "answered", id: check.id, status, check: check.checks });
      return { status: 200, body: { status } };
    } catch (error) {
      emit({ type: "failed", id: check.id, error });
      return reject(500, "check_failed", error instanceof Error ? error.message.slice(0, 500) : "the check failed");
    }
  }

  async function fetchHandler(request: Request): Promise<Response> {
    if (request.method !== "POST") return Response.json(refuse(405, "method_not_allowed", "use POST").body, { status: 405 });
    const answer = await receive({ body: await request.text(), headers: request.headers });
    return Response.json(answer.body, { status: answer.status });
  }

  // The receiver's mounts use only receive() and fetch() and send the answer as JSON: reuse them.
  const asReceiver = { receive, fetch: fetchHandler } as unknown as Receiver;
  return {
    receive,
    fetch: fetchHandler,
    node: nodeHandler(asReceiver),
    fastify: (path) => fastifyPlugin(asReceiver, path),
    hono: honoHandler(asReceiver),
  };
}
