// Helpers shared by the transactional-message tests: a business table, signed check requests.
import { Webhook } from "standardwebhooks";
import { dialectOf, type Executor } from "../../src/index.ts";

/** `?` placeholders → the database's own. */
export const sqlFor = (db: Executor, text: string) => dialectOf(db.dialect).sql(text);

/** The producer's business table: orders that a transaction marks paid. */
export async function createOrders(db: Executor): Promise<void> {
  await db.query("CREATE TABLE IF NOT EXISTS orders (sn varchar(60) PRIMARY KEY, status varchar(10) NOT NULL, amount integer NOT NULL)");
}

export async function addOrders(db: Executor, sns: readonly string[], amount = 10): Promise<void> {
  for (let i = 0; i < sns.length; i += 500) {
    const chunk = sns.slice(i, i + 500);
    await db.query(
      sqlFor(db, `INSERT INTO orders (sn, status, amount) VALUES ${chunk.map(() => "(?, 'new', ?)").join(", ")}`),
      chunk.flatMap((sn) => [sn, amount]),
    );
  }
}

/** The business change of the tests: mark one order paid (it must be new). */
export async function payOrder(tx: Executor, sn: string): Promise<void> {
  await tx.query(sqlFor(tx, "UPDATE orders SET status = 'paid' WHERE sn = ? AND status = 'new'"), [sn]);
}

export async function orderStatus(db: Executor, sn: string): Promise<string | null> {
  const rows = await db.query<{ status: string }>(sqlFor(db, "SELECT status FROM orders WHERE sn = ?"), [sn]);
  return rows[0]?.status ?? null;
}

/** Order numbers whose status is paid. */
export async function paidOrders(db: Executor): Promise<Set<string>> {
  return new Set((await db.query<{ sn: string }>("SELECT sn FROM orders WHERE status = 'paid'")).map((r) => r.sn));
}

export async function barrierOf(db: Executor, id: string): Promise<string | null> {
  const rows = await db.query<{ outcome: string }>(sqlFor(db, "SELECT outcome FROM tidings_tx_barrier WHERE id = ?"), [id]);
  return rows[0]?.outcome ?? null;
}

/**
 * Statements of `db`'s own database waiting for a lock held by another transaction: a check-back
 * queued behind a local transaction that holds its barrier key. Poll it less often than every
 * 100 ms: InnoDB refreshes its information_schema view of transactions only when nobody has read
 * it for that long, so a faster poll sees the first answer forever.
 */
export async function lockWaiters(db: Executor): Promise<number> {
  const rows =
    db.dialect === "postgres"
      ? await db.query<{ n: unknown }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
      : await db.query<{ n: unknown }>(
          "SELECT count(*) AS n FROM information_schema.innodb_trx t JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id WHERE t.trx_state = 'LOCK WAIT' AND p.db = DATABASE()",
        );
  return Number(rows[0]?.n ?? 0);
}

export async function countRows(db: Executor, table: "tidings_tx_barrier" | "tidings_tx_intent"): Promise<number> {
  const rows = await db.query<{ n: unknown }>(`SELECT count(*) AS n FROM ${table}`);
  return Number(rows[0]?.n ?? 0);
}

/**
 * A check-back request as the service sends it, signed with `secret` (or with what `options`
 * says). `context`: the message's check context (what transaction() prepared it with, the
 * database's identity); absent: none, as for a message prepared without one.
 */
export function signedCheck(
  secret: string,
  id: string,
  options: { body?: string; at?: Date; webhookId?: string; checks?: number; topic?: string; context?: string } = {},
): { body: string; headers: Record<string, string> } {
  const fields = { id, topic: options.topic ?? "order.paid", tag: null, key: id, payload: { id }, checks: options.checks ?? 1 };
  const body = options.body ?? JSON.stringify(options.context === undefined ? fields : { ...fields, context: options.context });
  const at = options.at ?? new Date();
  const webhookId = options.webhookId ?? id;
  return {
    body,
    headers: {
      "content-type": "application/json",
      "webhook-id": webhookId,
      "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
      "webhook-signature": new Webhook(secret).sign(webhookId, at, body),
      "tidings-check": String(options.checks ?? 1),
    },
  };
}
