import pg from "pg";
import type { DeliveryRecord } from "../domain/delivery.ts";
import type { MessageRecord } from "../domain/message.ts";
import { parseExact } from "../domain/rawJson.ts";
import type { DeliveryState, MessageState } from "../domain/states.ts";
import type { ConsumerOutcome } from "../domain/outcome.ts";
import type { TraceContext } from "../domain/traceContext.ts";

export const MESSAGE_COLUMNS = `m.seq, m.id, m.app, m.topic, m.tag, m.key, m.payload, m.headers, m.state,
  m.deliver_at, m.created_at, m.committed_at, m.rolled_back_at, m.checks, m.next_check_at, m.in_doubt_at, m.completed_at,
  m.traceparent, m.tracestate`;

/** Timestamps arrive as Date from columns and as text from to_jsonb(); both become ISO text. */
const iso = (value: Date | string | null | undefined): string | null =>
  value === null || value === undefined ? null : (typeof value === "string" ? new Date(value) : value).toISOString();

export function toMessage(row: Record<string, unknown>): MessageRecord {
  return {
    seq: row.seq as number,
    id: row.id as string,
    app: row.app as string | null,
    topic: row.topic as string,
    tag: row.tag as string | null,
    key: row.key as string | null,
    payload: row.payload,
    headers: row.headers as Record<string, string>,
    state: row.state as MessageState,
    deliverAt: iso(row.deliver_at as Date)!,
    createdAt: iso(row.created_at as Date)!,
    committedAt: iso(row.committed_at as Date | null),
    rolledBackAt: iso(row.rolled_back_at as Date | null),
    checks: (row.checks as number | undefined) ?? 0,
    nextCheckAt: iso(row.next_check_at as Date | null),
    inDoubtAt: iso(row.in_doubt_at as Date | null),
    completedAt: iso(row.completed_at as Date | null),
    trace: traceOfRow(row),
  };
}

/** The trace context columns of a row (message or claim), or null. */
export function traceOfRow(row: Record<string, unknown>): TraceContext | null {
  const traceparent = row.traceparent as string | null | undefined;
  return traceparent ? { traceparent, tracestate: (row.tracestate as string | null | undefined) ?? null } : null;
}

export function toDelivery(row: Record<string, unknown>): DeliveryRecord {
  const state = row.state as DeliveryState;
  return {
    id: row.id as number,
    subscription: row.subscription as string,
    state,
    attempts: row.attempts as number,
    nextAttemptAt: state === "pending" ? iso(row.next_attempt_at as Date) : null,
    lastStatus: row.last_status as number | null,
    lastError: row.last_error as string | null,
    deliveredAt: iso(row.delivered_at as Date | null),
    deadAt: iso(row.dead_at as Date | null),
    deadReason: row.dead_reason as string | null,
    outcome: (row.outcome as ConsumerOutcome | null | undefined) ?? null,
    outcomeAt: iso(row.outcome_at as Date | null | undefined),
    outcomeError: (row.outcome_error as string | null | undefined) ?? null,
  };
}

/**
 * Column types of message reads: a json column (payload) whose text holds a number JSON.parse
 * would round comes back as its exact text (RawJson); headers are strings and parse as usual.
 */
export const EXACT_TYPES = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === pg.types.builtins.JSON ? parseExact : pg.types.getTypeParser(oid, format ?? "text")) as typeof pg.types.getTypeParser,
};
