import type { Executor, Outbox } from "@tidings/sdk";

/** The recharge service's own database: its recharge records (and the SDK's outbox table). */
export const RECHARGE_SCHEMA = `CREATE TABLE IF NOT EXISTS recharges (
  recharge_no text PRIMARY KEY,
  account     text NOT NULL,
  amount      integer NOT NULL CHECK (amount > 0),
  created_at  timestamptz NOT NULL DEFAULT now()
)`;

export interface Recharge {
  rechargeNo: string;
  account: string;
  amount: number;
}

export const RECHARGE_TOPIC = "recharge.paid";

/**
 * A paid recharge: the record and its notice are written in one local transaction. The notice
 * goes out only if the record commits, and the relay sends it after the commit.
 */
export async function recordRecharge(db: Executor, outbox: Outbox, r: Recharge): Promise<string> {
  return db.transaction(async (tx) => {
    await tx.query("INSERT INTO recharges (recharge_no, account, amount) VALUES ($1, $2, $3)", [r.rechargeNo, r.account, r.amount]);
    return outbox.add(tx, { id: `recharge-${r.rechargeNo}`, topic: RECHARGE_TOPIC, key: r.rechargeNo, payload: r });
  });
}

/** What every account should have: the sum of its recharges. */
export async function expectedBalances(db: Executor): Promise<Map<string, number>> {
  const rows = await db.query<{ account: string; total: string }>("SELECT account, SUM(amount) AS total FROM recharges GROUP BY account");
  return new Map(rows.map((r) => [r.account, Number(r.total)]));
}
