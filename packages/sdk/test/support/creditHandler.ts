// A business handler as `tidings reconcile --handler` loads it: credits the message's account.
import type { Envelope, Executor } from "../../src/index.ts";

export async function handle(message: Envelope, tx: Executor): Promise<void> {
  const { account, amount } = message.payload as { account: string; amount: number };
  await tx.query("UPDATE accounts SET balance = balance + $1 WHERE id = $2", [amount, account]);
}
