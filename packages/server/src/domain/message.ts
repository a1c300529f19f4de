import type { MessageState } from "./states.ts";
import { stringifyExact } from "./rawJson.ts";
import type { TraceContext } from "./traceContext.ts";

/**
 * What the producer chose for a message: its app, topic, tag, key, payload and headers (not
 * when or whether it is delivered). The same id with the same content is the same message.
 */
export interface MessageContent {
  app: string | null;
  topic: string;
  tag: string | null;
  key: string | null;
  payload: unknown;
  headers: Record<string, string>;
}

/** A message as the API shows it. */
export interface MessageRecord extends MessageContent {
  seq: number;
  id: string;
  state: MessageState;
  deliverAt: string;
  createdAt: string;
  committedAt: string | null;
  rolledBackAt: string | null;
  /** Check-backs made (prepared messages). */
  checks: number;
  nextCheckAt: string | null;
  inDoubtAt: string | null;
  /** When every delivery was reported applied (or duplicate) by its consumer; null until then. */
  completedAt: string | null;
  /** Where in a trace it was sent (not shown by the API); absent where a read leaves it out. */
  trace?: TraceContext | null;
}

/** What a transport needs of a message: the payload and headers stay JSON text end to end. */
export interface OutgoingMessage {
  id: string;
  topic: string;
  tag: string | null;
  key: string | null;
  createdAt: string;
  payloadJson: string;
  headersJson: string;
  /** Its trace context: each attempt's span is a child of it. */
  trace?: TraceContext | null;
}

export function outgoingOf(m: MessageRecord, payloadJson = stringifyExact(m.payload), headersJson = JSON.stringify(m.headers)): OutgoingMessage {
  return { id: m.id, topic: m.topic, tag: m.tag, key: m.key, createdAt: m.createdAt, payloadJson, headersJson, trace: m.trace ?? null };
}
