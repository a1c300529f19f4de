import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { waitFor } from "@tidings/testkit/wait";
import {
  createReceiver,
  fullIdOf,
  Inbox,
  nodeHandler,
  reconcileIds,
  reconcileQuery,
  type Envelope,
  type Executor,
  type ReconcileOptions,
} from "../src/index.ts";
import { openDatabase, type OpenDatabase } from "./support/databases.ts";
import { startTidings, type TestTidings } from "./support/tidings.ts";

// Best-effort notification with reconciliation: a receiver that missed a notice asks the
// sender's query interface and applies the same idempotent update. Here the receiver is down until every delivery attempt is used up.

let tidings: TestTidings;
let account: OpenDatabase;
let server: Server;
let down = true;
const inbox = new Inbox({ consumer: "account" });

async function credit(message: Envelope, tx: Executor): Promise<void> {
  const { account: id, amount } = message.payload as { account: string; amount: number };
  await tx.query("UPDATE accounts SET balance = balance + $1 WHERE id = $2", [amount, id]);
}
const balance = async () => Number((await account.db.query<{ balance: number }>("SELECT balance FROM accounts WHERE id = 'alice'"))[0]!.balance);

before(async () => {
  tidings = await startTidings("reconcile");
  account = await openDatabase("postgres", "reconcile_account");
  await account.db.query("CREATE TABLE accounts (id text PRIMARY KEY, balance integer NOT NULL)");
  await account.db.query("INSERT INTO accounts VALUES ('alice', 0)");
  let receiverHandler: ReturnType<typeof nodeHandler> | null = null;
  server = createServer((req, res) => (down ? res.writeHead(503).end("down") : receiverHandler!(req, res)));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/notify`;
  const secret = await tidings.subscribe("account", "recharge.paid", url, { schedule: ["50ms"], maxAttempts: 2 });
  receiverHandler = nodeHandler(createReceiver({ secret, db: account.db, inbox, handle: credit }));
});
after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await account.close();
  await tidings.close();
});

test("a message the receiver never got is recovered by id and by business key, and applied once", async () => {
  const first = await tidings.client.messages.send({ topic: "recharge.paid", key: "tx-1001", payload: { account: "alice", amount: 300 } });
  const second = await tidings.client.messages.send({ topic: "recharge.paid", key: "tx-1002", payload: { account: "alice", amount: 45 } });
  for (const id of [first.id, second.id]) {
    await waitFor(`the delivery of ${id} to go dead`, async () => (await tidings.client.messages.get(id))?.deliveries?.[0]?.state === "dead", 10_000, 50);
  }
  assert.equal(await balance(), 0, "the receiver got nothing");

  const o: ReconcileOptions = { client: tidings.client, db: account.db, inbox, handle: credit };
  // Results name messages by their full id: the webhook-id a delivery would have carried.
  const [firstFull, secondFull] = [fullIdOf(first), fullIdOf(second)];
  assert.equal(firstFull, `${first.app}/${first.id}`);
  assert.deepEqual(await reconcileIds(o, [first.id, "no-such-message"]), { applied: [firstFull], duplicates: [], missing: ["no-such-message"] });
  assert.equal(await balance(), 300);
  assert.deepEqual(await reconcileQuery(o, { key: "tx-1002" }), { applied: [secondFull], duplicates: [], missing: [] });
  assert.deepEqual(await reconcileQuery(o, { topic: "recharge.paid" }), { applied: [], duplicates: [firstFull, secondFull], missing: [] });
  assert.equal(await balance(), 345);

  // The receiver comes back and the dead deliveries are re-sent: they are duplicates now.
  down = false;
  for (const id of [first.id, second.id]) {
    const response = await fetch(`${tidings.url}/v1/messages/${id}/resend`, { method: "POST", headers: { authorization: `Bearer ${tidings.apiKey}` } });
    assert.equal(response.status, 200);
  }
  for (const id of [first.id, second.id]) {
    await waitFor(`${id} delivered`, async () => (await tidings.client.messages.get(id))?.deliveries?.[0]?.state === "delivered", 10_000, 50);
  }
  assert.equal(await balance(), 345, "each recharge applied once");
  const records = await Promise.all([firstFull, secondFull].map((id) => inbox.get(account.db, id)));
  assert.deepEqual(
    records.map((r) => [r?.status, r?.attempts]),
    [
      ["applied", 1],
      ["applied", 1],
    ],
  );
});
