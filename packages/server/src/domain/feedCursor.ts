/**
 * A place in the forward feed: after the message whose commit transaction is `tx` and whose
 * seq is `seq` (see migration 0023). Readers hold it as an opaque string; only the service
 * reads it, so its form may change with a version prefix.
 */
export interface FeedPlace {
  /** The transaction id (xid8) as decimal text. */
  readonly tx: string;
  readonly seq: string;
}

/** Before every message. */
export const FEED_START: FeedPlace = { tx: "0", seq: "0" };

const FORM = /^v1\.(\d{1,20})\.(\d{1,19})$/;

export function encodeFeedCursor(place: FeedPlace): string {
  return Buffer.from(`v1.${place.tx}.${place.seq}`).toString("base64url");
}

/** The place a cursor names, or undefined when the text is no cursor of ours. */
export function decodeFeedCursor(cursor: string): FeedPlace | undefined {
  if (!/^[A-Za-z0-9_-]{1,80}$/.test(cursor)) return undefined;
  const match = FORM.exec(Buffer.from(cursor, "base64url").toString("latin1"));
  if (!match) return undefined;
  const [tx, seq] = [match[1]!, match[2]!];
  // xid8 and bigint bounds: a larger number is no place the service gave.
  if (BigInt(tx) > 18446744073709551615n || BigInt(seq) > 9223372036854775807n) return undefined;
  return { tx, seq };
}
