import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { waitFor } from "@tidings/testkit/wait";
import { TidingsError, type FeedMessage, type ReconciliationReport } from "../src/index.ts";
import { startTidings, type TestTidings } from "./support/tidings.ts";

let tidings: TestTidings;

before(async () => {
  tidings = await startTidings("sdkfeed");
});
after(async () => {
  await tidings.close();
});

test("client.feed reads committed messages in commit order across pages and resumes from its cursor", async () => {
  const client = tidings.client;
  await client.messages.prepare({ id: "late", topic: "feed.sdk", payload: { n: 0 } }, { checkAfter: "1h" });
  await client.messages.sendBatch(Array.from({ length: 7 }, (_, i) => ({ id: `m${i}`, topic: "feed.sdk", key: `k${i}`, payload: { n: i } })));
  const read = async (after?: string) => {
    const reader = client.feed({ topic: "feed.sdk", after, pageSize: 3 });
    const got: FeedMessage[] = [];
    for await (const m of reader) got.push(m);
    return { got, reader };
  };
  const first = await waitFor("seven messages in the feed", async () => {
    const r = await read();
    return r.got.length === 7 ? r : null;
  });
  const app = first.got[0]!.id.split("/")[0];
  assert.deepEqual(
    first.got.map((m) => m.id),
    Array.from({ length: 7 }, (_, i) => `${app}/m${i}`),
  );
  assert.deepEqual(first.got[3]!.payload, { n: 3 });
  assert.equal(first.reader.caughtUp, true);
  const cursor = first.reader.cursor!;
  assert.ok(cursor);

  // The prepared message commits after those seven: a reader resuming from the cursor gets it.
  await client.messages.commit("late");
  const second = await waitFor("the late commit in the feed", async () => {
    const r = await read(cursor);
    return r.got.length === 1 ? r : null;
  });
  assert.deepEqual(
    second.got.map((m) => m.id),
    [`${app}/late`],
  );
  // Nothing more after its cursor.
  assert.deepEqual((await read(second.reader.cursor)).got, []);
});

test("client.feed stopped within a page resumes at that page: nothing is skipped", async () => {
  const client = tidings.client;
  await client.messages.sendBatch(Array.from({ length: 5 }, (_, i) => ({ id: `s${i}`, topic: "feed.stop", payload: { n: i } })));
  await waitFor("five messages in the feed", async () => {
    let n = 0;
    for await (const _ of client.feed({ topic: "feed.stop" })) n++;
    return n === 5;
  });
  const reader = client.feed({ topic: "feed.stop", pageSize: 2 });
  const seen: string[] = [];
  for await (const m of reader) {
    seen.push(m.id);
    if (seen.length === 3) break; // within the second page
  }
  const rest: string[] = [];
  for await (const m of client.feed({ topic: "feed.stop", pageSize: 2, after: reader.cursor })) rest.push(m.id);
  assert.deepEqual(
    rest.map((id) => id.split("/")[1]),
    ["s2", "s3", "s4"],
    "the second page again, then the rest",
  );
});

test("client.feed wants a topic or a subscription, and the service's refusals name the field", async () => {
  assert.throws(
    () => tidings.client.feed({}),
    (e: unknown) => e instanceof TidingsError && e.code === "config",
  );
  await assert.rejects(
    async () => {
      for await (const _ of tidings.client.feed({ topic: "t", since: "last week" })) break;
    },
    (e: unknown) => e instanceof TidingsError && /since/.test(e.message),
  );
});

test("client.reportReconciliation sends a run's report; the service keeps it under the app", async () => {
  const report: ReconciliationReport = {
    kind: "consumer",
    subscription: "account",
    reporter: "account-worker",
    since: "2026-12-05T08:00:00.000Z",
    until: "2026-12-05T09:00:00.000Z",
    startedAt: "2026-12-05T09:00:01.000Z",
    finishedAt: "2026-12-05T09:00:02.000Z",
    counts: { checked: 10, missing: 1, repaired: 1, failed: 0 },
    differences: [{ id: "recharge/r-1", problem: "missing", action: "applied" }],
  };
  const stored = await tidings.client.reportReconciliation(report);
  assert.equal(stored.app, (await tidings.admin.apps.list())[0]!.name);
  assert.deepEqual(stored.differences, [{ id: "recharge/r-1", problem: "missing", action: "applied", error: null }]);
  await assert.rejects(
    tidings.client.reportReconciliation({ ...report, counts: { checked: -1, missing: 0, repaired: 0, failed: 0 } }),
    (e: unknown) => e instanceof TidingsError && /counts\.checked/.test(e.message),
  );
});
