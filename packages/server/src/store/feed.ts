import { FEED_START, type FeedPlace } from "../domain/feedCursor.ts";
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

/**
 * The least margin between a `since` and the commit times the seek below relies on. A statement
 * that writes messages gets its transaction id within this of its transaction's start; see
 * feedSeekMarginMs.
 */
const SEEK_MARGIN_MS = 10 * 60_000;

/**
 * The margin feedStart leaves before `since`: ten minutes, or twice the statement timeout when
 * that is longer (the statement that writes messages is cut off by it, and the begin before an
 * atomic batch's insert adds a round trip).
 */
export function feedSeekMarginMs(statementTimeoutMs: number): number {
  return Math.max(SEEK_MARGIN_MS, 2 * statementTimeoutMs);
}

// $1 topic; $2 a transaction id; $3 the cutoff (since − margin). The first committed message of
// the topic whose commit_tx is at least $2, in feed order, and whether it committed before the
// cutoff: one probe of messages_feed. With "<" and "desc": the last one whose commit_tx is below $2.
const probeSql = (op: ">=" | "<", dir: "" | "desc") => `
  select m.commit_tx::text as tx, m.committed_at < $3::timestamptz as early
    from messages m
   where m.topic = $1 and m.state = 'committed' and m.commit_tx ${op} $2::xid8
   order by m.commit_tx ${dir}, m.seq ${dir}
   limit 1`;
const FROM_SQL = probeSql(">=", "");
const BEFORE_SQL = probeSql("<", "desc");
/** Above every transaction id (xid8's largest value). */
const TOP = 2n ** 64n - 1n;

interface Probe {
  tx: bigint;
  early: boolean;
}

/**
 * Where a read of the topic's messages committed at or after `since` can start instead of the
 * topic's first message, without passing over any of them: a place before most of an old topic.
 *
 * Why it skips none. committed_at is the `now()` of the transaction that made the message
 * committed (the start of that transaction: the insert of a message accepted committed, or the
 * commit of a prepared one, store/insertMessages.ts and store/preparedMessages.ts), and commit_tx
 * is that transaction's id, which it got after it started. Transaction ids are handed out in
 * increasing order, so if message M has commit_tx below P's, M's transaction got its id before
 * P's did: M's transaction began before P's got its id, which is within the margin T of P's
 * start (feedSeekMarginMs). So committed_at(M) < committed_at(P) + T: when committed_at(P) <
 * since − T, every message of the window has a commit_tx above P's (a message of P's own
 * transaction has P's committed_at). That holds whether M's transaction has ended or not, and
 * however the commit times of other messages interleave: only P's own transaction must have got
 * its id within T.
 *
 * Migration 0023 is the one transaction whose messages' committed_at is not its own start: the
 * messages stored before it took its id with the times they had committed at, which are earlier,
 * so they say nothing about when its id was handed out. The start is therefore taken at two
 * such messages of different transactions, A and B, both committed before since − T, and the
 * read starts before A's transaction: at least one of the two is an ordinary transaction, and
 * either bound keeps every message of the window after A's (if B's holds, a message below A's
 * commit_tx is below B's too). Two messages found this way are usually neighbours: the start is
 * then one transaction's messages earlier than it could be.
 *
 * Finding them: a binary search over the topic's commit_tx values (at most 64 probes of
 * messages_feed, each the first message at or after a value), for the latest message committed
 * before since − T; then the message of the transaction before it, or, when that one is not
 * early enough (commit times need not follow ids), the search's previous find. A topic whose
 * oldest message is not that old (or that has none) is read from its start.
 */
export async function feedStart(db: Db, topic: string, since: string, marginMs: number): Promise<FeedPlace> {
  const cutoff = new Date(Date.parse(since) - marginMs).toISOString();
  const probe = async (sql: string, tx: bigint): Promise<Probe | null> => {
    const { rows } = await db.query(sql, [topic, tx.toString(), cutoff]);
    return rows[0] ? { tx: BigInt(rows[0].tx), early: rows[0].early } : null;
  };
  const first = await probe(FROM_SQL, 0n);
  if (!first?.early) return FEED_START;
  const last = await probe(BEFORE_SQL, TOP);
  // found: the latest message known to have committed before the cutoff; earlier: the one found before it.
  let found = first;
  let earlier: Probe | null = null;
  let lo = first.tx;
  let hi = last?.tx ?? first.tx;
  while (lo < hi) {
    const mid = (lo + hi + 1n) / 2n;
    const at = await probe(FROM_SQL, mid);
    if (at?.early) {
      earlier = found;
      found = at;
      lo = at.tx;
    } else {
      hi = mid - 1n;
    }
  }
  const before = await probe(BEFORE_SQL, found.tx);
  const start = before?.early ? before : earlier;
  return start ? { tx: start.tx.toString(), seq: "0" } : FEED_START;
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
