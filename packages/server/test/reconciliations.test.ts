import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { api } from "./support/api.ts";

let database: TestDatabase;
let service: RunningService;
let admin: ReturnType<typeof api>;
let shop: ReturnType<typeof api>;
let viewer: ReturnType<typeof api>;

before(async () => {
  database = await createTestDatabase("recon");
  service = await startTestService(database.url);
  admin = api(service.url, ADMIN_KEY);
  const created = await admin.post("/v1/apps", { name: "shop" });
  shop = api(service.url, created.body.apiKey);
  const vera = await admin.post("/v1/operators", { name: "vera", role: "viewer" });
  viewer = api(service.url, vera.body.key);
});

after(async () => {
  await service.close();
  await database.drop();
});

const report = (over: Record<string, unknown> = {}) => ({
  kind: "consumer",
  subscription: "inventory",
  reporter: "worker-1:4242",
  since: "2026-12-05T08:00:00Z",
  until: "2026-12-05T09:00:00Z",
  startedAt: "2026-12-05T09:00:01Z",
  finishedAt: "2026-12-05T09:00:03.500Z",
  counts: { checked: 480, missing: 3, repaired: 2, failed: 1 },
  differences: [
    { id: "shop/order-1", problem: "missing", action: "applied" },
    { id: "shop/order-2", problem: "missing", action: "applied" },
    { id: "shop/order-3", problem: "missing", action: "failed", error: "stock row locked" },
  ],
  ...over,
});

test("an app reports a run; people list the runs and read one with its differences", async () => {
  const sent = await shop.post("/v1/reconciliations", report());
  assert.equal(sent.status, 201, JSON.stringify(sent.body));
  assert.equal(sent.body.app, "shop", "the app is the key's, whatever the report says");
  assert.equal(sent.body.finishedAt, "2026-12-05T09:00:03.500Z");
  const clean = await shop.post(
    "/v1/reconciliations",
    report({ kind: "producer", subscription: null, topic: "order.paid", counts: { checked: 10, missing: 0, repaired: 0, failed: 0 }, differences: [] }),
  );
  assert.equal(clean.status, 201, JSON.stringify(clean.body));

  const list = await viewer.get("/v1/reconciliations");
  assert.equal(list.status, 200);
  assert.deepEqual(
    list.body.items.map((r: { id: number }) => r.id),
    [clean.body.id, sent.body.id],
    "newest first",
  );
  assert.equal(list.body.items[1].differences, undefined, "a list leaves the differences out");
  assert.deepEqual(list.body.items[1].counts, { checked: 480, missing: 3, repaired: 2, failed: 1 });

  const one = await viewer.get(`/v1/reconciliations/${sent.body.id}`);
  assert.equal(one.status, 200);
  assert.deepEqual(one.body.differences, [
    { id: "shop/order-1", problem: "missing", action: "applied", error: null },
    { id: "shop/order-2", problem: "missing", action: "applied", error: null },
    { id: "shop/order-3", problem: "missing", action: "failed", error: "stock row locked" },
  ]);
  assert.equal((await viewer.get("/v1/reconciliations/999999")).status, 404);

  // Filters and paging.
  const ids = async (query: string) => (await viewer.get(`/v1/reconciliations?${query}`)).body.items.map((r: { id: number }) => r.id);
  assert.deepEqual(await ids("kind=producer"), [clean.body.id]);
  assert.deepEqual(await ids("subscription=inventory"), [sent.body.id]);
  assert.deepEqual(await ids("topic=order.paid"), [clean.body.id]);
  assert.deepEqual(await ids("differences=true"), [sent.body.id]);
  assert.deepEqual(await ids("app=nobody"), []);
  const first = await viewer.get("/v1/reconciliations?limit=1");
  assert.equal(first.body.items.length, 1);
  assert.deepEqual(await ids(`limit=1&cursor=${first.body.nextCursor}`), [sent.body.id]);

  // An app may report but not read the runs; a viewer may read but not report.
  assert.equal((await shop.get("/v1/reconciliations")).status, 403);
  assert.equal((await viewer.post("/v1/reconciliations", report())).status, 403);
  const byAdmin = await admin.post("/v1/reconciliations", report({ reporter: "tidings-reconcile" }));
  assert.equal(byAdmin.status, 201);
  assert.equal(byAdmin.body.app, null);
});

test("every field of a report is checked: 400 naming it", async () => {
  const diff = (d: Record<string, unknown>) => ({ differences: [{ id: "shop/x", problem: "missing", action: "applied", ...d }] });
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ kind: "both" }, "kind"],
    [{ subscription: null }, "subscription"],
    [{ subscription: "Bad Name" }, "subscription"],
    [{ topic: "a b" }, "topic"],
    [{ reporter: "" }, "reporter"],
    [{ reporter: "x".repeat(129) }, "reporter"],
    [{ since: "yesterday" }, "since"],
    [{ until: "2026-12-05T07:00:00Z" }, "until"],
    [{ startedAt: "2126-01-01T00:00:00Z" }, "startedAt"],
    [{ finishedAt: "2026-12-05T09:00:00Z" }, "finishedAt"],
    [{ counts: { checked: -1, missing: 0, repaired: 0, failed: 0 } }, "counts.checked"],
    [{ counts: { checked: 1, missing: 0.5, repaired: 0, failed: 0 } }, "counts.missing"],
    [{ counts: { checked: 1, missing: 0, repaired: 1e13, failed: 0 } }, "counts.repaired"],
    [{ counts: { checked: 1, missing: 0, repaired: 0 } }, "counts.failed"],
    [{ differences: Array.from({ length: 1001 }, (_, i) => ({ id: `m${i}`, problem: "missing", action: "applied" })) }, "differences"],
    [diff({ id: "" }), "differences[0].id"],
    [diff({ id: "a\u0000b" }), "differences[0].id"],
    [diff({ id: "a\ud800b" }), "differences[0].id"],
    [diff({ problem: "lost" }), "differences[0].problem"],
    [diff({ action: "ignored" }), "differences[0].action"],
    [diff({ error: "e".repeat(2001) }), "differences[0].error"],
    [diff({ extra: 1 }), "differences[0].extra"],
    [{ differencesOmitted: -2 }, "differencesOmitted"],
    [{ secret: "x" }, "secret"],
  ];
  for (const [over, field] of cases) {
    const answer = await shop.post("/v1/reconciliations", report(over));
    assert.equal(answer.status, 400, `${field}: ${JSON.stringify(answer.body)}`);
    assert.equal(answer.body.error.field, field, JSON.stringify(answer.body));
  }
  // An error text is made storable (a NUL dropped) rather than refused.
  const stored = await shop.post("/v1/reconciliations", report(diff({ error: "bad\u0000byte" })));
  assert.equal(stored.status, 201, JSON.stringify(stored.body));
  assert.equal(stored.body.differences[0].error, "badbyte");
  // List filters are checked too.
  assert.equal((await viewer.get("/v1/reconciliations?limit=0")).body.error.field, "querystring.limit");
  assert.equal((await viewer.get("/v1/reconciliations?kind=other")).body.error.field, "querystring.kind");
  assert.equal((await viewer.get("/v1/reconciliations?since=soon")).body.error.field, "querystring.since");
});
