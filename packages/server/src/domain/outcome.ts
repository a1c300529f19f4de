import { createHash } from "node:crypto";
import type { NewMessage } from "./newMessage.ts";

/** Mirror of the Postgres enum consumer_outcome (0024_consumer_outcomes.sql). */
export const ConsumerOutcome = {
  applied: "applied",
  duplicate: "duplicate",
  failed: "failed",
} as const;
export type ConsumerOutcome = (typeof ConsumerOutcome)[keyof typeof ConsumerOutcome];

/** Characters of a failed outcome's error kept on the delivery. */
export const OUTCOME_ERROR_CHARS = 1000;
/** Reports per call of `POST /v1/outcomes`. */
export const MAX_OUTCOMES_PER_CALL = 1000;

/** One report of a consumer: what it did with the message `messageId` of subscription `subscription`. */
export interface OutcomeReport {
  subscription: string;
  /** The full id, as the consumer sees it (`webhook-id`, the envelope's id). */
  messageId: string;
  outcome: ConsumerOutcome;
  /** A failed outcome's error (storable, bounded). */
  error: string | null;
  /** A broker consumer gave up on the message (its dead letter): the delivery becomes dead. */
  gaveUp: boolean;
}

/**
 * A batch's reports, one per delivery: the last report of each wins, as the consumer sent them in
 * the order they happened.
 */
export function lastPerDelivery(reports: readonly OutcomeReport[]): OutcomeReport[] {
  const byKey = new Map<string, OutcomeReport>();
  for (const r of reports) {
    const key = `${r.subscription}\u0000${r.messageId}`;
    byKey.delete(key); // keeps the order of the last reports
    byKey.set(key, r);
  }
  return [...byKey.values()];
}

/** What a completed message's announcement says. */
export interface CompletedMessage {
  id: string;
  /** The producer app; null for the admin's own messages, which are not announced. */
  app: string | null;
  topic: string;
  completedAt: string;
}

/**
 * The `message.completed` announcement of a message, published by the service on `topic`, tagged
 * with the producer app's name (so that a producer subscribes to its own with `tags: [app]`). Its
 * id is derived from the message's, so an announcement is stored once however often it is made.
 */
export function completedAnnouncement(topic: string, m: CompletedMessage & { app: string }): NewMessage {
  const digest = createHash("sha256").update(m.id).digest("hex").slice(0, 40);
  return {
    id: `completed.${digest}`,
    app: null,
    topic,
    tag: m.app,
    key: null,
    payload: { type: "message.completed", messageId: m.id, app: m.app, topic: m.topic, completedAt: m.completedAt },
    headers: {},
    contentHash: null,
    deliverAt: null,
    state: "committed",
    checkAfterMs: null,
  };
}
