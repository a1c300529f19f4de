import { invalid } from "./errors.ts";
import { parseDuration } from "./duration.ts";
import { contentHashOf } from "./idempotency.ts";
import { badText, deliverAtProblem, inspectValue, MAX_AHEAD_MS } from "./messageInput.ts";
import { fullId } from "./messageIds.ts";
import type { NewMessage } from "./newMessage.ts";
import type { TraceContext } from "./traceContext.ts";
import { holdsInexactNumber, RawJson } from "./rawJson.ts";

/** A message of a publish request, as the request schema has validated it. */
export interface RequestedMessage {
  id?: string;
  topic: string;
  tag?: string | null;
  key?: string | null;
  payload?: unknown;
  headers?: Record<string, string>;
  delay?: string;
  deliverAt?: string;
  prepare?: boolean;
  checkAfter?: string;
  /** Prepared messages: what the check-back sends back as `context`. */
  checkContext?: string;
  /** W3C trace context of the message itself (the request's headers stand for it when absent). */
  traceparent?: string;
  tracestate?: string;
}

/** What a look at the request body's text found beyond its parsed value. */
export interface ContentInspection {
  /** Some text may hold a NUL or a lone surrogate, or nest too deep: walk each message to name the field. */
  readonly walk: boolean;
  /** The exact payload text of message i (0 for a single message) where a number in it may not survive JSON.parse. */
  readonly exactPayloads: ReadonlyMap<number, string> | null;
}

/** What a publish request's messages are decided with, besides themselves. */
export interface PublishContext {
  /** The sending app, whose ids are its own; null for the admin. */
  readonly app: string | null;
  /** How long a prepared message without its own checkAfter waits for its first check-back (ms). */
  readonly checkAfterMs: number;
  readonly inspection: ContentInspection;
  /** The request's instant (ms since the epoch): a delay counts from it, a deliverAt is judged by it. */
  readonly now: number;
  /** An id for a message sent without one. */
  readonly newId: () => string;
  /** The trace context to store with a message (`field` prefixes error fields); absent: none. */
  readonly trace?: (message: RequestedMessage, field: string) => TraceContext | null;
}

/**
 * The stored form of a request's message (`index` in its request; `field` prefixes error fields,
 * e.g. `messages[2].`), or a 400 naming the field at fault. Besides the schema, it refuses what
 * PostgreSQL would refuse inside a statement shared with other messages (NUL, lone surrogates,
 * nesting past the limit, dates out of range), and keeps a payload as its exact text where
 * JSON.parse would change a number in it.
 */
export function messageToStore(body: RequestedMessage, context: PublishContext, field = "", index = 0): NewMessage {
  if (!("payload" in body)) throw invalid(`${field}payload`, `${field}payload is required`);
  if (body.delay !== undefined && body.deliverAt !== undefined) {
    throw invalid(`${field}delay`, "give delay or deliverAt, not both");
  }
  let deliverAt: Date | null = null;
  if (body.delay !== undefined) {
    const ms = parseDuration(body.delay);
    if (ms === undefined) throw invalid(`${field}delay`, `"${body.delay}" is not a duration (use e.g. 500ms, 30s, 5m, 2h)`);
    if (ms > MAX_AHEAD_MS) throw invalid(`${field}delay`, "the delay is over a year");
    deliverAt = new Date(context.now + ms);
  } else if (body.deliverAt !== undefined) {
    const at = Date.parse(body.deliverAt);
    const problem = deliverAtProblem(at, context.now);
    if (problem) throw invalid(`${field}deliverAt`, `deliverAt ${problem}`);
    deliverAt = new Date(at);
  }
  if (body.checkAfter !== undefined && !body.prepare) throw invalid(`${field}checkAfter`, "checkAfter applies to prepared messages only");
  if (body.checkContext !== undefined && !body.prepare) throw invalid(`${field}checkContext`, "checkContext applies to prepared messages only");
  let checkAfterMs: number | null = null;
  if (body.prepare) {
    checkAfterMs = context.checkAfterMs;
    if (body.checkAfter !== undefined) {
      const ms = parseDuration(body.checkAfter);
      if (ms === undefined) throw invalid(`${field}checkAfter`, `"${body.checkAfter}" is not a duration (use e.g. 500ms, 30s, 5m)`);
      if (ms > MAX_AHEAD_MS) throw invalid(`${field}checkAfter`, "checkAfter is over a year");
      checkAfterMs = ms;
    }
  }
  if (context.inspection.walk) refuseBadContent(body, field);
  const trace = context.trace?.(body, field) ?? null;
  const app = context.app;
  const tag = body.tag ?? null;
  const key = body.key ?? null;
  const headers = body.headers ?? {};
  // The exact text, where this payload holds a number JSON.parse would change (or may: hex text).
  let exact = context.inspection.exactPayloads?.get(index);
  if (exact !== undefined && !holdsInexactNumber(exact)) exact = undefined;
  const stored: NewMessage = {
    id: fullId(app, body.id ?? context.newId()),
    app,
    topic: body.topic,
    tag,
    key,
    payload: exact === undefined ? body.payload : new RawJson(exact),
    headers,
    // A generated id cannot clash, so it needs no hash; a producer's id is hashed as sent.
    contentHash: null,
    deliverAt,
    state: body.prepare ? "prepared" : "committed",
    checkAfterMs,
    checkContext: body.prepare ? (body.checkContext ?? null) : null,
    trace,
  };
  if (exact !== undefined) stored.payloadJson = exact;
  if (body.id !== undefined) {
    stored.payloadJson ??= JSON.stringify(body.payload);
    stored.headersJson = JSON.stringify(headers);
    stored.contentHash = contentHashOf(stored, stored.payloadJson, stored.headersJson);
  }
  return stored;
}

/** The first NUL, lone surrogate or too deep nesting in a message's free text, as a 400 naming the field. */
function refuseBadContent(body: RequestedMessage, field: string): void {
  for (const name of ["key", "checkContext"] as const) {
    const text = body[name];
    if (text == null) continue;
    const bad = badText(text);
    if (bad) throw invalid(`${field}${name}`, `${field}${name} ${bad}`);
  }
  if (body.headers) {
    const found = inspectValue(body.headers, `${field}headers`);
    if (found) throw invalid(found.field, found.message);
  }
  const found = inspectValue(body.payload, `${field}payload`);
  if (found) throw invalid(found.field, found.message);
}
