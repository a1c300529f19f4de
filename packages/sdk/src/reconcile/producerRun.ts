import type { Executor } from "../executor/executor.ts";
import { failedPage, resendSent, sentPage, type SentCursor } from "../outbox/outboxQueries.ts";
import type { ReconcileClient } from "./reconcileClient.ts";
import type { ReportBuilder } from "./reportBuilder.ts";

/** A producer's side of a reconciliation: its outbox's rows of one topic (in the reconciler's `db`). */
export interface ProducerSide {
  /** The topic whose outbox rows are compared (a reconciler per topic; reports name it). */
  topic: string;
  /**
   * Put rows the service does not know back to pending, so the relay sends them again (default
   * true); false: only report them.
   */
  repair?: boolean;
  /**
   * Look-ups at the service in flight at once (default 4), each of one page of rows (up to
   * 1,000 ids, `POST /v1/messages/lookup`): the pages after the one being settled are read meanwhile.
   */
  concurrency?: number;
}

/**
 * Which of `ids` (up to 1000 of the app's own) the service does not have: one request, under way.
 * Awaited in page order, perhaps after a later page's look-up failed: that failure is thrown
 * then, and is not an unhandled rejection meanwhile.
 */
function unknownTo(client: ReconcileClient, ids: string[]): Promise<string[]> {
  const unknown = client.messages.lookup(ids).then((answer) => answer.missing);
  unknown.catch(() => undefined);
  return unknown;
}

/**
 * Walks the outbox rows marked sent in the window, a page at a time, asking the service about
 * each page in one request (a lost send: marked sent, unknown to the service) and putting the
 * unknown ones back to be sent; then lists the rows the relay gave up on in the window. Holds
 * `concurrency` pages' ids at most.
 */
export async function reconcileProducer(
  client: ReconcileClient,
  db: Executor,
  side: ProducerSide,
  window: { since: Date; until: Date },
  pageSize: number,
  report: ReportBuilder,
): Promise<void> {
  const repair = side.repair ?? true;
  const concurrency = side.concurrency ?? 4;
  const inFlight: Array<Promise<string[]>> = [];
  // In page order, so that the report lists the differences as the rows were marked sent.
  const settle = async (asked: Promise<string[]>) => {
    const unknown = await asked;
    if (unknown.length === 0) return;
    // Only rows still marked sent are put back: one a person retried meanwhile is left alone.
    if (repair) await resendSent(db, unknown);
    for (const id of unknown) report.add({ id, problem: "unknown_to_service", action: repair ? "resent" : "none" });
  };
  let cursor: SentCursor | null = null;
  for (;;) {
    const rows = await sentPage(db, side.topic, window.since, window.until, cursor, pageSize);
    if (rows.length === 0) break;
    const last = rows[rows.length - 1]!;
    cursor = { sentAt: last.sentAt, seq: last.seq };
    report.counts.checked += rows.length;
    inFlight.push(
      unknownTo(
        client,
        rows.map((r) => r.id),
      ),
    );
    if (inFlight.length >= concurrency) await settle(inFlight.shift()!);
  }
  while (inFlight.length > 0) await settle(inFlight.shift()!);
  let afterSeq = 0;
  for (;;) {
    const rows = await failedPage(db, side.topic, window.since, window.until, afterSeq, pageSize);
    if (rows.length === 0) break;
    afterSeq = rows[rows.length - 1]!.seq;
    report.counts.checked += rows.length;
    // Given up for a reason (refused by the service, or out of attempts): a person decides (`outbox.retry`).
    for (const row of rows) report.add({ id: row.id, problem: "not_sent", action: "none", error: row.lastError });
  }
}
