import { TidingsError } from "../errors.ts";
import { uuidv7 } from "./ids.ts";
import type { TraceFields } from "../tracing/otel.ts";

/** A message to publish: what `outbox.add` takes and what the service's send API accepts. */
export interface OutgoingMessage {
  /** The idempotency key; generated (UUIDv7) when absent. */
  id?: string;
  topic: string;
  tag?: string | null;
  /** The business id (order number, transaction number): what reconciliation searches by. */
  key?: string | null;
  /** Any JSON value. */
  payload: unknown;
  headers?: Record<string, string>;
  /** Deliver no earlier than this (a Date), or this many milliseconds after it is added. */
  deliverAt?: Date;
  delayMs?: number;
}

/** A validated message with every field resolved; the payload and headers as JSON text. */
export interface ResolvedMessage {
  id: string;
  topic: string;
  tag: string | null;
  key: string | null;
  payloadJson: string;
  headersJson: string;
  deliverAt: Date | null;
  /** Where in a trace it was sent (the sender's active span), when OpenTelemetry is in use. */
  trace?: TraceFields | null;
}

// The service's own limits (its request schema), checked here so that a message the service
// would refuse fails in the user's transaction instead of later in the relay.
const TOPIC = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$/;
const TAG = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$/;
const ID = /^[A-Za-z0-9][A-Za-z0-9_.:@=+-]{0,199}$/;
const MAX_HEADERS = 50;

function invalid(field: string, message: string): TidingsError {
  return new TidingsError("invalid_message", message, { field });
}

/** Validates a message at the edge and resolves defaults; `field` prefixes error fields. */
export function resolveMessage(message: OutgoingMessage, now = Date.now(), field = ""): ResolvedMessage {
  const id = message.id ?? uuidv7(now);
  if (typeof id !== "string" || !ID.test(id)) throw invalid(`${field}id`, `${field}id must match ${ID} (got ${JSON.stringify(id)})`);
  if (typeof message.topic !== "string" || !TOPIC.test(message.topic)) {
    throw invalid(`${field}topic`, `${field}topic must match ${TOPIC} (got ${JSON.stringify(message.topic)})`);
  }
  const tag = message.tag ?? null;
  if (tag !== null && (typeof tag !== "string" || !TAG.test(tag))) {
    throw invalid(`${field}tag`, `${field}tag must be letters, digits and _ . : / - (up to 100)`);
  }
  const key = message.key ?? null;
  if (key !== null && (typeof key !== "string" || key.length < 1 || key.length > 200)) {
    throw invalid(`${field}key`, `${field}key must be a string of 1 to 200 characters`);
  }
  if (!("payload" in message) || message.payload === undefined) throw invalid(`${field}payload`, `${field}payload is required`);
  let payloadJson: string | undefined;
  try {
    payloadJson = JSON.stringify(message.payload);
  } catch (error) {
    throw new TidingsError("invalid_message", `${field}payload is not JSON-serializable`, { field: `${field}payload`, cause: error });
  }
  // A function or a symbol has no JSON at all: JSON.stringify answers undefined.
  if (payloadJson === undefined) throw invalid(`${field}payload`, `${field}payload is not JSON-serializable`);
  const headers = message.headers ?? {};
  const entries = Object.entries(headers);
  if (entries.length > MAX_HEADERS) throw invalid(`${field}headers`, `${field}headers: at most ${MAX_HEADERS}`);
  for (const [name, value] of entries) {
    if (typeof value !== "string" || name.length > 200 || value.length > 4000) {
      throw invalid(`${field}headers.${name}`, `${field}headers.${name} must be a string of up to 4000 characters`);
    }
  }
  if (message.deliverAt !== undefined && message.delayMs !== undefined) throw invalid(`${field}delayMs`, "give deliverAt or delayMs, not both");
  let deliverAt: Date | null = null;
  if (message.deliverAt !== undefined) {
    if (!(message.deliverAt instanceof Date) || Number.isNaN(message.deliverAt.getTime()))
      throw invalid(`${field}deliverAt`, `${field}deliverAt must be a valid Date`);
    deliverAt = message.deliverAt;
  } else if (message.delayMs !== undefined) {
    if (!Number.isFinite(message.delayMs) || message.delayMs < 0) throw invalid(`${field}delayMs`, `${field}delayMs must be a number of milliseconds >= 0`);
    deliverAt = new Date(now + message.delayMs);
  }
  return { id, topic: message.topic, tag, key, payloadJson, headersJson: JSON.stringify(headers), deliverAt };
}
