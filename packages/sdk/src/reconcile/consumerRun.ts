import type { Envelope } from "../domain/envelope.ts";
import type { FeedMessage } from "../client/apiTypes.ts";
import type { Executor } from "../executor/executor.ts";
import type { Inbox } from "../inbox/inbox.ts";
import type { ReconcileClient } from "./reconcileClient.ts";
import type { ReportBuilder } from "./reportBuilder.ts";
import { TidingsError } from "../errors.ts";

/** A consumer's side of a reconciliation: its subscription (or topic), its inbox, and its handler. */
export interface ConsumerSide {
  /** The subscription whose committed messages it should have applied. */
  subscription?: string;
  /** Or a topic (the consumer app needs it in its `readTopics`). */
  topic?: string;
  inbox: Inbox;
  /**
   * The same business change the receiver runs. Without it a run only finds what is missing
   * (nothing is applied).
   */
  handle?(message: Envelope, tx: Executor): Promise<unknown>;
}

const ERROR_TEXT_LIMIT = 2000;
export const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error)).slice(0, ERROR_TEXT_LIMIT);

/** A message of the feed as a delivery would have brought it: the inbox sees the two as the same. */
const envelopeOf = (m: FeedMessage): Envelope => ({
  id: m.id,
  topic: m.topic,
  tag: m.tag,
  key: m.key,
  payload: m.payload,
  headers: m.headers,
  createdAt: m.createdAt,
});

/**
 * Walks the service's committed messages of the window, a page at a time, against the inbox:
 * one query per page finds the ones not applied, and each is applied through the inbox (the
 * same path as a delivery, so a delivery arriving meanwhile is a duplicate). Holds one page.
 */
export async function reconcileConsumer(
  client: ReconcileClient,
  db: Executor,
  side: ConsumerSide,
  window: { since: Date; until: Date },
  pageSize: number,
  report: ReportBuilder,
): Promise<void> {
  const query = side.subscription !== undefined ? { subscription: side.subscription } : { topic: side.topic };
  let page: FeedMessage[] = [];
  const feed = client.feed({ ...query, since: window.since, until: window.until, pageSize });
  for await (const message of feed) {
    page.push(message);
    if (page.length >= pageSize) {
      await comparePage(db, side, page, report);
      page = [];
    }
  }
  if (page.length > 0) await comparePage(db, side, page, report);
  // Messages of the window committed but still held back (an older transaction runs on the
  // service's database server): the run did not see them, so it cannot say nothing is missing.
  if ((feed as { caughtUp?: boolean }).caughtUp === false) {
    throw new TidingsError(
      "unavailable",
      "the service holds back committed messages of the window (a transaction older than theirs still runs on its database server): run again later",
    );
  }
}

async function comparePage(db: Executor, side: ConsumerSide, page: readonly FeedMessage[], report: ReportBuilder): Promise<void> {
  report.counts.checked += page.length;
  const statuses = await side.inbox.statusesOf(
    db,
    page.map((m) => m.id),
  );
  // In commit order, one at a time: the order a delivery of a keyed subscription keeps.
  for (const message of page) {
    const status = statuses.get(message.id);
    if (status === "applied") continue;
    // Never seen, or seen and its handling failed (the inbox has the error).
    const problem = status === "failed" ? "failed" : "missing";
    if (!side.handle) {
      report.add({ id: message.id, problem, action: "none" });
      continue;
    }
    const envelope = envelopeOf(message);
    const handle = side.handle;
    try {
      const outcome = await side.inbox.handle(db, envelope, (tx) => handle(envelope, tx));
      // A duplicate: a delivery applied it between the look-up and now; nothing was missing.
      if (outcome.status === "applied") report.add({ id: message.id, problem, action: "applied" });
    } catch (error) {
      // The inbox recorded the failure (status failed, the error); the next run tries it again.
      report.add({ id: message.id, problem, action: "failed", error: errorText(error) });
    }
  }
}
