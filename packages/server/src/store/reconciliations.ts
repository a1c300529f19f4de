import type { Db } from "./db.ts";

/** One difference a run found, and what it did about it. */
export interface ReconciliationDifference {
  id: string;
  problem: "missing" | "failed" | "unknown_to_service" | "not_sent";
  action: "applied" | "resent" | "none" | "failed";
  error: string | null;
}

export interface NewReconciliation {
  app: string | null;
  kind: "consumer" | "producer";
  subscription: string | null;
  topic: string | null;
  reporter: string;
  since: string;
  until: string;
  startedAt: string;
  finishedAt: string;
  counts: { checked: number; missing: number; repaired: number; failed: number };
  differences: ReconciliationDifference[];
  differencesOmitted: number;
}

export interface ReconciliationRecord extends Omit<NewReconciliation, "differences"> {
  id: number;
  receivedAt: string;
  /** Left out of lists (GET one run for them). */
  differences?: ReconciliationDifference[];
}

/** How long reports are kept. */
const KEEP_DAYS = 90;

const toRecord = (r: Record<string, unknown>, withDifferences: boolean): ReconciliationRecord => ({
  id: Number(r.id),
  app: r.app as string | null,
  kind: r.kind as ReconciliationRecord["kind"],
  subscription: r.subscription as string | null,
  topic: r.topic as string | null,
  reporter: r.reporter as string,
  since: (r.window_since as Date).toISOString(),
  until: (r.window_until as Date).toISOString(),
  startedAt: (r.started_at as Date).toISOString(),
  finishedAt: (r.finished_at as Date).toISOString(),
  counts: { checked: Number(r.checked), missing: Number(r.missing), repaired: Number(r.repaired), failed: Number(r.failed) },
  ...(withDifferences ? { differences: r.differences as ReconciliationDifference[] } : {}),
  differencesOmitted: Number(r.differences_omitted),
  receivedAt: (r.received_at as Date).toISOString(),
});

/**
 * Stores a report, and deletes those older than 90 days (the index on received_at makes that
 * free when there are none).
 * Params: $1 app, $2 kind, $3 subscription, $4 topic, $5 reporter, $6–$9 since, until, started,
 * finished, $10–$13 counts, $14 differences (JSON), $15 omitted.
 */
export async function insertReconciliation(db: Db, n: NewReconciliation): Promise<ReconciliationRecord> {
  const { rows } = await db.query(
    `with pruned as (
       delete from reconciliations where received_at < now() - make_interval(days => ${KEEP_DAYS})
     )
     insert into reconciliations (app, kind, subscription, topic, reporter, window_since, window_until, started_at, finished_at,
                                  checked, missing, repaired, failed, differences, differences_omitted)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15)
     returning *`,
    [
      n.app,
      n.kind,
      n.subscription,
      n.topic,
      n.reporter,
      n.since,
      n.until,
      n.startedAt,
      n.finishedAt,
      n.counts.checked,
      n.counts.missing,
      n.counts.repaired,
      n.counts.failed,
      JSON.stringify(n.differences),
      n.differencesOmitted,
    ],
  );
  return toRecord(rows[0], true);
}

export interface ReconciliationFilter {
  kind?: string | undefined;
  subscription?: string | undefined;
  topic?: string | undefined;
  app?: string | undefined;
  reporter?: string | undefined;
  /** Runs started at or after / before these. */
  since?: string | undefined;
  until?: string | undefined;
  /** Only runs that found differences (missing or failed > 0). */
  withDifferences?: boolean | undefined;
  /** Runs with a smaller id than this (the previous page's cursor). */
  beforeId?: number | undefined;
  limit: number;
}

/**
 * Reports newest first, keyset paging on the id, without their differences (GET one for those).
 * Each filter is skipped when null. Params: $1 kind … $8 before id, $9 limit + 1.
 */
export async function listReconciliations(db: Db, f: ReconciliationFilter): Promise<{ items: ReconciliationRecord[]; nextCursor: string | null }> {
  const { rows } = await db.query(
    `select id, app, kind, subscription, topic, reporter, window_since, window_until, started_at, finished_at,
            checked, missing, repaired, failed, differences_omitted, received_at
       from reconciliations
      where ($1::text is null or kind = $1)
        and ($2::text is null or subscription = $2)
        and ($3::text is null or topic = $3)
        and ($4::text is null or app = $4)
        and ($5::text is null or reporter = $5)
        and ($6::timestamptz is null or started_at >= $6)
        and ($7::timestamptz is null or started_at < $7)
        and ($8::bigint is null or id < $8)
        and (not $10::boolean or missing > 0 or failed > 0)
      order by id desc
      limit $9`,
    [
      f.kind ?? null,
      f.subscription ?? null,
      f.topic ?? null,
      f.app ?? null,
      f.reporter ?? null,
      f.since ?? null,
      f.until ?? null,
      f.beforeId ?? null,
      f.limit + 1,
      f.withDifferences === true,
    ],
  );
  const items = rows.slice(0, f.limit).map((r) => toRecord(r, false));
  return { items, nextCursor: rows.length > f.limit ? String(items.at(-1)!.id) : null };
}

/** One report with its differences, or null. Params: $1 id. */
export async function getReconciliation(db: Db, id: number): Promise<ReconciliationRecord | null> {
  const { rows } = await db.query("select * from reconciliations where id = $1", [id]);
  return rows[0] ? toRecord(rows[0], true) : null;
}
