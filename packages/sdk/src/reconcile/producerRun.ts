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
  /** Look-ups at the service in flight at once (default 8). */
  concurrency?: number;
}

/** Which of `ids` (the app's own) the service does not have: `concurrency` look-ups at a time. */
async function unknownTo(client: ReconcileClient, ids: readonly string[], concurrency: number): Promise<string[]> {
  const unknown: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++]!;
      if ((await client.messages.get(id)) === null) unknown.push(id);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
  return unknown;
}

/**
 * Walks the outbox rows marked sent in the window, a page at a time, asking the service for
 * each (a lost send: marked sent, unknown to the service) and putting the unknown ones back to
 * be sent; then lists the rows the relay gave up on in the window. Holds one page.
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
  const concurrency = side.concurrency ?? 8;
  let cursor: SentCursor | null = null;
  for (;;) {
    const rows = await sentPage(db, side.topic, window.since, window.until, cursor, pageSize);
    if (rows.length === 0) break;
    const last = rows[rows.length - 1]!;
    cursor = { sentAt: last.sentAt, seq: last.seq };
    report.counts.checked += rows.length;
    const unknown = await unknownTo(
      client,
      rows.map((r) => r.id),
      concurrency,
    );
    if (unknown.length === 0) continue;
    // Only rows still marked sent are put back: one a person retried meanwhile is left alone.
    if (repair) await resendSent(db, unknown);
    for (const id of unknown) report.add({ id, problem: "unknown_to_service", action: repair ? "resent" : "none" });
  }
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
