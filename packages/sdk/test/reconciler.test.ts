import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, test } from "node:test";
import { waitFor } from "@tidings/testkit/wait";
import {
  createReceiver,
  fullIdOf,
  Inbox,
  nodeHandler,
  Outbox,
  Reconciler,
  type Envelope,
  type Executor,
  type ReconcilerEvent,
  type ReconciliationReport,
} from "../src/index.ts";
import { DIALECT_NAME, DIALECTS, openDatabase, type OpenDatabase } from "./support/databases.ts";
import { ADMIN_KEY, startTidings, type TestTidings } from "./support/tidings.ts";

// Scheduled reconciliation against a real service: a consumer whose receiver was down while
// every delivery attempt was used up is made whole by one run, and a producer's outbox row
// whose send was lost (marked sent, never arrived) is found and sent again.

const CLI = fileURLToPath(new URL("../../server/src/cli.ts", import.meta.url));
const run = promisify(execFile);

let tidings: TestTidings;
let account: OpenDatabase;
let producerPg: OpenDatabase;
let server: Server;
let down = false;
const inbox = new Inbox({ consumer: "account" });
/** Messages the business handler refuses (a bad account): reconciliation lists them as failed. */
const refused = new Set<string>();

async function credit(message: Envelope, tx: Executor): Promise<void> {
  const { account: id, amount } = message.payload as { account: string; amount: number };
  if (refused.has(id)) throw new Error(`no account ${id}`);
  await tx.query("UPDATE accounts SET balance = balance + $1 WHERE id = $2", [amount, id]);
}
const balance = async () => Number((await account.db.query<{ balance: number }>("SELECT balance FROM accounts WHERE id = 'alice'"))[0]!.balance);
const deliveryState = async (id: string) => (await tidings.client.messages.get(id))?.deliveries?.[0]?.state;

before(async () => {
  tidings = await startTidings("reconciler");
  account = await openDatabase("postgres", "reconciler_account");
  producerPg = await openDatabase("postgres", "reconciler_producer");
  await account.db.query("CREATE TABLE accounts (id text PRIMARY KEY, balance integer NOT NULL)");
  await account.db.query("INSERT INTO accounts VALUES ('alice', 0)");
  let receiverHandler: ReturnType<typeof nodeHandler> | null = null;
  server = createServer((req, res) => (down ? res.writeHead(503).end("down") : receiverHandler!(req, res)));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/notify`;
  // No circuit breaker: while the receiver is down every delivery spends its attempts and goes dead.
  const secret = await tidings.subscribe("account", "recharge.paid", url, { schedule: ["50ms"], maxAttempts: 2 }, { circuit: null });
  receiverHandler = nodeHandler(createReceiver({ secret, db: account.db, inbox, handle: credit }));
});
after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await account.close();
  await producerPg.close();
  await tidings.close();
});

test("a consumer that missed a window of messages is made whole by one run: exactly the missing ones applied, reported; a second run finds nothing", async () => {
  const since = new Date(Date.now() - 1000);
  const send = (amount: number, who = "alice") => tidings.client.messages.send({ topic: "recharge.paid", payload: { account: who, amount } });
  const delivered = async (ids: string[], state: string) => {
    for (const id of ids) await waitFor(`${id} ${state}`, async () => (await deliveryState(id)) === state, 10_000, 50);
  };

  const before = [await send(1), await send(2)];
  await delivered(
    before.map((m) => m.id),
    "delivered",
  );
  down = true; // the consumer is down: every delivery attempt of these fails, and they go dead
  const missed = [];
  for (let i = 0; i < 20; i++) missed.push(await send(100));
  refused.add("bob");
  const bad = await send(7, "bob");
  await delivered(
    [...missed, bad].map((m) => m.id),
    "dead",
  );
  down = false;
  const afterwards = [await send(4)];
  await delivered(
    afterwards.map((m) => m.id),
    "delivered",
  );
  assert.equal(await balance(), 7, "only the messages delivered while it was up are applied");

  const events: ReconcilerEvent[] = [];
  const reconciler = new Reconciler({
    client: tidings.client,
    db: account.db,
    consumer: { subscription: "account", inbox, handle: credit },
    name: "account-reconciler",
    maxDifferences: 10,
    onEvent: (e) => events.push(e),
  });
  const report = await reconciler.run({ since });
  assert.equal(await balance(), 7 + 20 * 100, "each missed recharge applied once");
  const missedIds = new Set(missed.map(fullIdOf));
  assert.deepEqual(report.counts, { checked: 24, missing: 21, repaired: 20, failed: 1 });
  assert.equal(report.differences.length, 10, "the list of differences is bounded; the counts are not");
  assert.equal(report.differencesOmitted, 11);
  for (const d of report.differences)
    assert.deepEqual([missedIds.has(d.id), d.problem, d.action], [true, "missing", "applied"], `${d.id} was one of the missed`);
  const counts = await inbox.counts(account.db);
  assert.deepEqual(counts, { applied: 23, failed: 1 }, "the missed ones are in the inbox now; the refused one is recorded failed");
  assert.match((await inbox.get(account.db, fullIdOf(bad)))!.lastError ?? "", /no account bob/);
  assert.equal(report.kind, "consumer");
  assert.equal(report.subscription, "account");
  assert.equal(report.reporter, "account-reconciler");
  assert.deepEqual(
    events.map((e) => e.type),
    ["run"],
    "the report reached the service",
  );
  const stored = (await (
    await fetch(`${tidings.url}/v1/reconciliations?reporter=account-reconciler`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
  ).json()) as { items: Array<{ kind: string; subscription: string; counts: unknown }> };
  assert.deepEqual(
    stored.items.map((r) => [r.kind, r.subscription, r.counts]),
    [["consumer", "account", report.counts]],
    "the service shows the run",
  );

  // The failed one is listed with its error in every run until it is fixed; nothing else differs.
  const again = await reconciler.run({ since });
  assert.deepEqual(again.counts, { checked: 24, missing: 1, repaired: 0, failed: 1 });
  assert.deepEqual(again.differences, [{ id: fullIdOf(bad), problem: "failed", action: "failed", error: "no account bob" }]);
  refused.delete("bob");
  await account.db.query("INSERT INTO accounts VALUES ('bob', 0)");
  const fixed = await reconciler.run({ since });
  assert.deepEqual(fixed.counts, { checked: 24, missing: 1, repaired: 1, failed: 0 });
  assert.deepEqual(fixed.differences, [{ id: fullIdOf(bad), problem: "failed", action: "applied" }]);
  const clean = await reconciler.run({ since });
  assert.deepEqual([clean.counts, clean.differences], [{ checked: 24, missing: 0, repaired: 0, failed: 0 }, []]);

  // The dead deliveries re-sent now are duplicates: the balance stays.
  const resend = await fetch(`${tidings.url}/v1/messages/${missed[0]!.id}/resend`, { method: "POST", headers: { authorization: `Bearer ${tidings.apiKey}` } });
  assert.equal(resend.status, 200);
  await delivered([missed[0]!.id], "delivered");
  assert.equal(await balance(), 7 + 20 * 100);
});

test("on a schedule, runs never overlap, each looks back its window, and stop() waits for the run in progress", async () => {
  let active = 0;
  let most = 0;
  const reports: ReconciliationReport[] = [];
  const reconciler = new Reconciler({
    client: tidings.client,
    db: account.db,
    consumer: {
      subscription: "account",
      inbox,
      handle: credit,
    },
    report: false,
    onEvent: (e) => {
      if (e.type === "run") reports.push(e.report);
    },
  });
  // A slow inbox look-up makes runs longer than the interval.
  const lookUp = inbox.statusesOf.bind(inbox);
  inbox.statusesOf = async (db, ids) => {
    most = Math.max(most, ++active);
    await new Promise((r) => setTimeout(r, 150));
    active--;
    return lookUp(db, ids);
  };
  try {
    reconciler.start({ every: "20ms", window: "1h" });
    await waitFor("three runs", async () => reports.length >= 3, 10_000, 20);
    await reconciler.stop();
    const done = reports.length;
    assert.equal(active, 0, "stop() returned after the run in progress ended");
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(reports.length, done, "no run after stop()");
  } finally {
    inbox.statusesOf = lookUp;
  }
  assert.equal(most, 1, "one run at a time");
  for (const r of reports) assert.equal(Date.parse(r.until) - Date.parse(r.since), 3_600_000);
  assert.ok(reports.every((r) => r.counts.missing === 0 && r.counts.checked === 24));
});

for (const dialect of DIALECTS) {
  test(`a producer's outbox row whose send was lost is found and sent again; rows the relay gave up on are listed (${DIALECT_NAME[dialect]})`, async () => {
    const producer = dialect === "postgres" ? producerPg : await openDatabase("mysql", "reconciler_producer");
    try {
      await producerCase(producer, dialect);
    } finally {
      if (producer !== producerPg) await producer.close();
    }
  });
}

async function producerCase(producer: OpenDatabase, dialect: string): Promise<void> {
  const lost = `${dialect}-lost-1`;
  const givenUp = `${dialect}-given-up-1`;
  const outbox = new Outbox({ db: producer.db, tidings: tidings.client });
  const since = new Date(Date.now() - 1000);
  const ids = await producer.db.transaction((tx) =>
    outbox.add(
      tx,
      [1, 2, 3].map((i) => ({ topic: "orders.made", payload: { i } })),
    ),
  );
  await outbox.relayOnce();
  assert.deepEqual(await outbox.counts(), { pending: 0, sent: 3, failed: 0 });
  // A send lost: the row is marked sent, the service never got it (as after a reply faked by a proxy).
  await producer.db.query(
    `INSERT INTO tidings_outbox (id, topic, payload, headers, status, attempts, sent_at) VALUES ('${lost}', 'orders.made', '{"i":4}', '{}', 'sent', 1, CURRENT_TIMESTAMP(6))`,
  );
  await producer.db.query(
    `INSERT INTO tidings_outbox (id, topic, payload, headers, status, attempts, failed_at, last_error) VALUES ('${givenUp}', 'orders.made', '{"i":5}', '{}', 'failed', 25, CURRENT_TIMESTAMP(6), 'HTTP 409: conflict')`,
  );
  assert.equal(await tidings.client.messages.get(lost), null);

  const events: ReconcilerEvent[] = [];
  const reconciler = new Reconciler({
    client: tidings.client,
    db: producer.db,
    producer: { topic: "orders.made" },
    pageSize: 2,
    onEvent: (e) => events.push(e),
  });
  const report = await reconciler.run({ since });
  assert.equal(report.kind, "producer");
  assert.equal(report.topic, "orders.made");
  assert.deepEqual(
    events.map((e) => e.type),
    ["run"],
    "the report reached the service",
  );
  assert.deepEqual(report.counts, { checked: 5, missing: 2, repaired: 1, failed: 0 });
  assert.deepEqual(report.differences, [
    { id: lost, problem: "unknown_to_service", action: "resent" },
    { id: givenUp, problem: "not_sent", action: "none", error: "HTTP 409: conflict" },
  ]);
  assert.deepEqual(await outbox.counts(), { pending: 1, sent: 3, failed: 1 }, "the lost row is back to be sent");
  await outbox.relayOnce();
  assert.ok(await tidings.client.messages.get(lost), "the service has it now");
  for (const id of ids) assert.ok(await tidings.client.messages.get(id));

  const again = await reconciler.run({ since });
  assert.deepEqual(again.counts, { checked: 5, missing: 1, repaired: 0, failed: 0 }, "only the given-up row is left");
}

test("a producer run asks the service one request per page of sent rows, a bounded number at once, and lists the lost rows in the order they were sent", async () => {
  const topic = "orders.many";
  const since = new Date(Date.now() - 1000);
  const id = (i: number) => `many-${String(i).padStart(4, "0")}`;
  const lost = [id(7), id(1200), id(2499)];
  await producerPg.db.query(
    `INSERT INTO tidings_outbox (id, topic, payload, status, attempts, sent_at)
     SELECT 'many-' || lpad(i::text, 4, '0'), $1, '{}', 'sent', 1, now() FROM generate_series(0, 2499) i ORDER BY i`,
    [topic],
  );
  // The service as the lookup answers: it has every row but the lost ones. The first page's
  // answer waits for the second page's question: the pages after it are read and asked meanwhile.
  const asked: number[] = [];
  let inFlight = 0;
  let mostInFlight = 0;
  let secondAsked!: () => void;
  const second = new Promise<void>((resolve) => (secondAsked = resolve));
  const client = {
    feed: (query: Parameters<typeof tidings.client.feed>[0]) => tidings.client.feed(query),
    reportReconciliation: async () => undefined,
    messages: {
      lookup: async (ids: readonly string[]) => {
        asked.push(ids.length);
        mostInFlight = Math.max(mostInFlight, ++inFlight);
        // (A deadline, so that a run asking one page at a time fails below instead of waiting here.)
        if (asked.length === 1) await Promise.race([second, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
        else if (asked.length === 2) secondAsked();
        inFlight--;
        return { found: ids.filter((i) => !lost.includes(i)).map((i) => ({ id: i, state: "committed" })), missing: ids.filter((i) => lost.includes(i)) };
      },
    },
  };
  try {
    const reconciler = new Reconciler({ client, db: producerPg.db, producer: { topic, concurrency: 2 }, report: false });
    const report = await reconciler.run({ since });
    assert.deepEqual(asked, [1000, 1000, 500], "one look-up per page of 1,000 rows");
    assert.equal(mostInFlight, 2, "two look-ups at once, as asked");
    assert.deepEqual(report.counts, { checked: 2500, missing: 3, repaired: 3, failed: 0 });
    assert.deepEqual(
      report.differences,
      lost.map((i) => ({ id: i, problem: "unknown_to_service", action: "resent" })),
    );
    const back = await producerPg.db.query<{ id: string }>("SELECT id FROM tidings_outbox WHERE topic = $1 AND status = 'pending' ORDER BY id", [topic]);
    assert.deepEqual(
      back.map((r) => r.id),
      lost,
    );
  } finally {
    await producerPg.db.query("DELETE FROM tidings_outbox WHERE topic = $1", [topic]);
  }
});

test("`tidings reconcile --producer` runs as a job: lists what differs, exits 1 while it is left, 0 once set right", async () => {
  const since = new Date(Date.now() - 1000).toISOString();
  await producerPg.db.query("DELETE FROM tidings_outbox");
  await producerPg.db.query(
    `INSERT INTO tidings_outbox (id, topic, payload, status, attempts, sent_at) VALUES ('lost-2', 'orders.made', '{"i":6}', 'sent', 1, now())`,
  );
  const args = [
    "--import",
    "tsx",
    CLI,
    "reconcile",
    "--producer",
    "--topic",
    "orders.made",
    "--since",
    since,
    "--database-url",
    producerPg.url,
    "--url",
    tidings.url,
    "--api-key",
    tidings.apiKey,
  ];
  const found = await run(process.execPath, [...args, "--no-repair"]).then(
    () => assert.fail("exit code 0 with a difference left"),
    (e: { code: number; stdout: string }) => e,
  );
  assert.equal(found.code, 1);
  assert.match(found.stdout, /checked 1, missing 1, repaired 0, failed 0/);
  assert.match(found.stdout, /unknown_to_service lost-2: none\n/);
  const repaired = await run(process.execPath, args);
  assert.match(repaired.stdout, /unknown_to_service lost-2: resent/);
  const [row] = await producerPg.db.query<{ status: string }>("SELECT status FROM tidings_outbox WHERE id = 'lost-2'");
  assert.equal(row!.status, "pending", "put back for the relay");
  const usage = await run(process.execPath, ["--import", "tsx", CLI, "reconcile", "--since", since]).catch((e: { code: number; stderr: string }) => e);
  assert.equal((usage as { code: number }).code, 2);
  assert.match((usage as { stderr: string }).stderr, /give --consumer SUBSCRIPTION, --topic TOPIC, or --producer --topic TOPIC/);
});

test("`tidings reconcile --consumer` with a handler module applies what the consumer missed", async () => {
  const since = new Date(Date.now() - 1000).toISOString();
  down = true;
  const missed = await tidings.client.messages.send({ topic: "recharge.paid", payload: { account: "alice", amount: 1000 } });
  await waitFor("the delivery to go dead", async () => (await deliveryState(missed.id)) === "dead", 10_000, 50);
  down = false;
  const before = await balance();
  const handler = fileURLToPath(new URL("./support/creditHandler.ts", import.meta.url));
  const { stdout } = await run(process.execPath, [
    "--import",
    "tsx",
    CLI,
    "reconcile",
    "--consumer",
    "account",
    "--inbox",
    "account",
    "--handler",
    handler,
    "--since",
    since,
    "--database-url",
    account.url,
    "--url",
    tidings.url,
    "--api-key",
    tidings.apiKey,
  ]);
  assert.match(stdout, /consumer account .*: checked 1, missing 1, repaired 1, failed 0/);
  assert.match(stdout, new RegExp(`missing ${fullIdOf(missed).replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: applied`));
  assert.equal(await balance(), before + 1000);
  assert.equal((await inbox.get(account.db, fullIdOf(missed)))?.status, "applied");
});

test("a run whose window the service still holds back (an older transaction on its database server) fails rather than report nothing missing", async () => {
  // The feed as the SDK's reader leaves it when it gave up waiting: nothing more given, not caught up.
  const heldBack = {
    ...tidings.client,
    feed: () => ({ caughtUp: false, async *[Symbol.asyncIterator]() {} }),
    messages: tidings.client.messages,
    reportReconciliation: tidings.client.reportReconciliation.bind(tidings.client),
  };
  const reconciler = new Reconciler({ client: heldBack, db: account.db, consumer: { subscription: "account", inbox }, report: false });
  await assert.rejects(reconciler.run({ since: new Date(Date.now() - 60_000) }), /holds back committed messages/);
});

test("a window reaching back past the inbox's retention is refused: its applied messages would look missing", async () => {
  const short = new Inbox({ consumer: "account", retentionMs: 3_600_000 });
  const reconciler = new Reconciler({ client: tidings.client, db: account.db, consumer: { subscription: "account", inbox: short, handle: credit } });
  await assert.rejects(reconciler.run({ since: new Date(Date.now() - 2 * 3_600_000) }), { code: "config", field: "since" });
  assert.throws(() => reconciler.start({ every: "15m", window: "2h" }), { code: "config", field: "window" });
  assert.throws(() => reconciler.start({ every: "soon", window: "30m" }), { code: "config", field: "every" });
  assert.throws(() => new Reconciler({ client: tidings.client, db: account.db, consumer: { inbox: short } }), {
    code: "config",
    field: "consumer.subscription",
  });
  assert.throws(() => new Reconciler({ client: tidings.client, db: account.db, producer: { topic: "" } }), { code: "config", field: "producer.topic" });
});
