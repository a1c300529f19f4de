import type { FeedPlace } from "../domain/feedCursor.ts";
import type { Db } from "./db.ts";
import { EXACT_TYPES } from "./messageRows.ts";

/** A committed message as the feed shows it: `id` is the full id, as deliveries carry it. */
export interface FeedMessage {
  id: string;
  topic: string;
  tag: string | null;
  key: string | null;
  payload: unknown;
  headers: Record<string, string>;
  createdAt: string;
  committedAt: string;
}

export interface FeedFilter {
  topic: string;
  /** Only messages with one of these tags (a subscription's tags); undefined: every tag. */
  tags?: readonly string[] | undefined;
  /** An app's view: its own messages, and all of the topic when it is one of its read topics. */
  ownApp?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  after: FeedPlace;
  limit: number;
  /** The page ends once its payloads and headers pass this many bytes (it holds one message at least). */
  maxBytes: number;
}

export interface FeedPage {
  items: FeedMessage[];
  /** Where the next page starts: after the last message returned, or after the last one looked at. */
  next: FeedPlace;
  /** More may follow now; false: the reader has what is committed so far (ask again later). */
  more: boolean;
  /**
   * With `more` false: messages of the topic (within `until`) are committed but not served yet,
   * because a transaction older than theirs still runs somewhere on the database server; they are
   * served as soon as it ends. A reader that needs everything committed so far asks again shortly.
   */
  waiting: boolean;
}

/**
 * A filter passes over messages: a page looks at up to this many times its limit, so that a
 * page costs a bounded scan however rare the matches are (a page may then come back short, or
 * empty, with `more`).
 */
const SCAN_FACTOR = 4;

/**
 * One page of the feed: the topic's committed messages after `after` in (commit_tx, seq)
 * order, only of transactions older than every one still running (a running one could commit
 * a message before a place already read). One range scan of messages_feed.
 * Params: $1 topic, $2 after's tx, $3 after's seq, $4 messages looked at, $5 limit,
 * $6 byte budget, then the filter's.
 */
export async function feedPage(db: Db, f: FeedFilter): Promise<FeedPage> {
  const values: unknown[] = [f.topic, f.after.tx, f.after.seq, 0, f.limit, f.maxBytes];
  const conditions: string[] = [];
  const add = (sql: string, value: unknown) => {
    values.push(value);
    conditions.push(sql.replace("?", `$${values.length}`));
  };
  if (f.tags !== undefined) add("m.tag = any (?::text[])", f.tags);
  if (f.ownApp !== undefined) add("m.app = ?", f.ownApp);
  if (f.since !== undefined) add("m.committed_at >= ?::timestamptz", f.since);
  if (f.until !== undefined) add("m.committed_at < ?::timestamptz", f.until);
  const filtered = conditions.length > 0;
  values[3] = filtered ? f.limit * SCAN_FACTOR : f.limit;
  const { rows } = await db.query({
    text: `with scanned as (
      select m.commit_tx, m.seq, m.id, m.topic, m.tag, m.key, m.payload, m.headers, m.created_at, m.committed_at,
             ${filtered ? conditions.join(" and ") : "true"} as hit
        from messages m
       where m.topic = $1 and m.state = 'committed'
         and (m.commit_tx, m.seq) > ($2::xid8, $3::bigint)
         and m.commit_tx < pg_snapshot_xmin(pg_current_snapshot())
       order by m.commit_tx, m.seq
       limit $4
    ), hits as (
      select s.*, row_number() over w as n,
             sum(octet_length(s.payload::text) + octet_length(s.headers::text)) over w
               - (octet_length(s.payload::text) + octet_length(s.headers::text)) as before_bytes
        from scanned s where s.hit
      window w as (order by s.commit_tx, s.seq rows between unbounded preceding and current row)
    )
    select 'm' as kind, h.commit_tx::text as tx, h.seq::text as seq, h.id, h.topic, h.tag, h.key, h.payload, h.headers,
           h.created_at, h.committed_at, null::bigint as count
      from hits h where h.n <= $5 and h.before_bytes < $6
    union all
    select 'h', null, null, null, null, null, null, null, null, null, null, (select count(*) from hits)
    union all
    (select 'l', s.commit_tx::text, s.seq::text, null, null, null, null, null, null, null, null, (select count(*) from scanned)
       from scanned s order by s.commit_tx desc, s.seq desc limit 1)`,
    values,
    types: EXACT_TYPES,
  });
  // The messages in feed order (a union's rows come in no promised order).
  const shown = rows.filter((r) => r.kind === "m").sort((a, b) => compare(a, b));
  const items: FeedMessage[] = [];
  let lastItem: FeedPlace | null = null;
  let hits = 0;
  let last: { place: FeedPlace; scanned: number } | null = null;
  for (const row of shown) {
    items.push({
      id: row.id,
      topic: row.topic,
      tag: row.tag,
      key: row.key,
      payload: row.payload,
      headers: row.headers,
      createdAt: (row.created_at as Date).toISOString(),
      committedAt: (row.committed_at as Date).toISOString(),
    });
    lastItem = { tx: row.tx, seq: row.seq };
  }
  for (const row of rows) {
    if (row.kind === "h") hits = Number(row.count);
    else if (row.kind === "l") last = { place: { tx: row.tx, seq: row.seq }, scanned: Number(row.count) };
  }
  // Matches cut off by the limit or the byte budget: the next page starts after the last one shown.
  if (lastItem && items.length < hits) return { items, next: lastItem, more: true, waiting: false };
  const more = last !== null && last.scanned === values[3];
  return { items, next: last ? last.place : f.after, more, waiting: more ? false : await heldBack(db, f.topic, f.until) };
}

// $1 topic; $2 until or null. Whether committed messages of the topic wait behind an older
// transaction still running (they are past every place served): one probe of messages_feed.
async function heldBack(db: Db, topic: string, until: string | undefined): Promise<boolean> {
  const { rows } = await db.query(
    `select exists (select 1 from messages m
                     where m.topic = $1 and m.state = 'committed' and m.commit_tx >= pg_snapshot_xmin(pg_current_snapshot())
                       and ($2::timestamptz is null or m.committed_at < $2)) as waiting`,
    [topic, until ?? null],
  );
  return rows[0].waiting;
}

/** (tx, seq) order of two rows, as decimal text too long for a double. */
function compare(a: { tx: string; seq: string }, b: { tx: string; seq: string }): number {
  const byTx = BigInt(a.tx) - BigInt(b.tx);
  if (byTx !== 0n) return byTx < 0n ? -1 : 1;
  const bySeq = BigInt(a.seq) - BigInt(b.seq);
  return bySeq === 0n ? 0 : bySeq < 0n ? -1 : 1;
}
