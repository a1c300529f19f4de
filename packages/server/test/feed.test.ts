import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { TidingsClient } from "@tidings/sdk";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";
import { encodeFeedCursor, FEED_START } from "../src/domain/feedCursor.ts";
import { api } from "./support/api.ts";

let database: TestDatabase;
let service: RunningService;
let db: pg.Pool;
let admin: ReturnType<typeof api>;
/** Apps: `shop` and `billing` publish; `ledger` reads the topic `pay.done` (readTopics). */
let shop: ReturnType<typeof api>;
let billing: ReturnType<typeof api>;
let ledger: ReturnType<typeof api>;

before(async () => {
  database = await createTestDatabase("feed");
  service = await startTestService(database.url);
  db = new pg.Pool({ connectionString: database.url, max: 3 });
  admin = api(service.url, ADMIN_KEY);
  const app = async (name: string, readTopics?: string[]) => {
    const created = await admin.post("/v1/apps", { name, ...(readTopics ? { readTopics } : {}) });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return api(service.url, created.body.apiKey);
  };
  shop = await app("shop");
  billing = await app("billing");
  ledger = await app("ledger", ["pay.done"]);
});

after(async () => {
  await service.close();
  await db.end();
  await database.drop();
});

interface Page {
  items: Array<{ id: string; topic: string; tag: string | null; key: string | null; payload: unknown; committedAt: string }>;
  next: string;
  more: boolean;
  waiting: boolean;
}

/** One page of the feed as `who` reads it. */
async function page(who: ReturnType<typeof api>, query: string): Promise<Page> {
  const answer = await who.get(`/v1/feed?${query}`);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body;
}

/** Everything the feed holds now after `cursor`, following `next` while `more`; returns the ids, where to go on and the requests it took. */
async function readAll(who: ReturnType<typeof api>, query: string, cursor?: string, limit = 500): Promise<{ ids: string[]; next: string; requests: number }> {
  const ids: string[] = [];
  let after = cursor;
  for (let requests = 1; ; requests++) {
    const p = await page(who, `${query}&limit=${limit}${after ? `&after=${after}` : ""}`);
    ids.push(...p.items.map((m) => m.id));
    after = p.next;
    if (!p.more) return { ids, next: after, requests };
  }
}

/** Until a commit of a prepared message waits inside its statement on a row lock. */
function commitWaitingOnLock(): Promise<boolean> {
  return waitFor("the commit waiting on the row lock", async () => {
    const { rows } = await db.query(
      "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%committed%'",
    );
    return rows[0].n > 0;
  });
}

/** Stores messages <topic>-<first>…<topic>-<first + count − 1> of `topic` (app shop) committed three hours ago, in one transaction. */
async function storeOld(topic: string, first: number, count: number): Promise<void> {
  await db.query(
    `insert into messages (id, app, topic, payload, headers, content_hash, state, deliver_at, committed_at)
     select 'shop/' || $1 || '-' || g, 'shop', $1, '{}', '{}', sha256(g::text::bytea), 'committed', now(), now() - interval '3 hours'
       from generate_series($2::int, $2::int + $3::int - 1) g`,
    [topic, first, count],
  );
}

/** A `since` of now by the database's clock, once that clock has passed it: what commits later is in the window. */
async function sinceNow(): Promise<string> {
  const { rows } = await db.query("select date_trunc('milliseconds', clock_timestamp()) + interval '1 ms' as since");
  const since = (rows[0].since as Date).toISOString();
  await waitFor("the database clock past since", async () => (await db.query("select clock_timestamp() > $1 as past", [since])).rows[0].past);
  return since;
}

test("a prepared message committed late comes after those committed before it, and a reader that started earlier does not skip it", async () => {
  const topic = "late.commit";
  assert.equal((await shop.post("/v1/messages", { id: "p", topic, payload: { n: "p" }, prepare: true, checkAfter: "1h" })).status, 201);
  for (const id of ["a", "b"]) assert.equal((await shop.post("/v1/messages", { id, topic, payload: { n: id } })).status, 201);
  // The reader has everything committed so far: a and b, not the prepared p.
  const first = await waitFor("a and b in the feed", async () => {
    const read = await readAll(admin, `topic=${topic}`);
    return read.ids.length === 2 ? read : null;
  });
  assert.deepEqual(first.ids, ["shop/a", "shop/b"]);

  // p's commit is held up inside its statement (a row lock taken here) while c is accepted and
  // committed: the feed must not show c before p's commit has ended, or the reader's cursor would
  // pass the place p takes.
  const blocker = await db.connect();
  try {
    await blocker.query("begin");
    await blocker.query("select 1 from messages where id = 'shop/p' for update");
    const commit = shop.post("/v1/messages/p/commit");
    await commitWaitingOnLock();
    assert.equal((await shop.post("/v1/messages", { id: "c", topic, payload: { n: "c" } })).status, 201);
    const meanwhile = await readAll(admin, `topic=${topic}`, first.next);
    assert.deepEqual(meanwhile.ids, [], "nothing after b while an earlier transaction may still commit before c");
    await blocker.query("rollback");
    assert.equal((await commit).status, 200);
  } finally {
    blocker.release();
  }
  const later = await waitFor("p and c in the feed", async () => {
    const read = await readAll(admin, `topic=${topic}`, first.next);
    return read.ids.length === 2 ? read : null;
  });
  assert.deepEqual(later.ids, ["shop/p", "shop/c"], "p took its place at its commit, before c, and after the cursor");
  // Read from the start, the order is the same and each message appears once.
  assert.deepEqual((await readAll(admin, `topic=${topic}`)).ids, ["shop/a", "shop/b", "shop/p", "shop/c"]);
  // A message accepted after the commit comes after p.
  assert.equal((await shop.post("/v1/messages", { id: "d", topic, payload: { n: "d" } })).status, 201);
  const last = await waitFor("d in the feed", async () => {
    const read = await readAll(admin, `topic=${topic}`, later.next);
    return read.ids.length === 1 ? read : null;
  });
  assert.deepEqual(last.ids, ["shop/d"]);
});

test("a reader following the feed while producers publish concurrently sees every message exactly once", async () => {
  const topic = "busy.topic";
  const producers = 4;
  const rounds = 30;
  // Each producer: single messages, batches of 5, and prepared messages committed a moment later.
  const publish = async (p: number) => {
    for (let r = 0; r < rounds; r++) {
      const base = `p${p}-r${r}`;
      const batch = Array.from({ length: 5 }, (_, i) => ({ id: `${base}-b${i}`, topic, payload: { p, r, i } }));
      const sent = await Promise.all([
        shop.post("/v1/messages", { id: `${base}-s`, topic, payload: { p, r } }),
        shop.post("/v1/messages/batch", { messages: batch }),
        shop.post("/v1/messages", { id: `${base}-x`, topic, payload: { p, r }, prepare: true, checkAfter: "1h" }),
      ]);
      for (const s of sent) assert.equal(s.status, 201, JSON.stringify(s.body));
      assert.equal((await shop.post(`/v1/messages/${base}-x/commit`)).status, 200);
    }
  };
  const total = producers * rounds * 7;
  const seen = new Map<string, number>();
  let done = false;
  const reader = (async () => {
    let cursor: string | undefined;
    // Small pages, read as fast as possible, so that pages end in the middle of concurrent commits.
    while (!done || seen.size < total) {
      const p = await page(admin, `topic=${topic}&limit=7${cursor ? `&after=${cursor}` : ""}`);
      for (const m of p.items) seen.set(m.id, (seen.get(m.id) ?? 0) + 1);
      cursor = p.next;
      if (!p.more && done && seen.size >= total) break;
      // Caught up: ask again in a moment, as a pulling consumer does.
      if (!p.more) await new Promise((r) => setTimeout(r, 5));
    }
  })();
  await Promise.all(Array.from({ length: producers }, (_, p) => publish(p)));
  done = true;
  await waitFor(`the reader to see all ${total} messages`, () => seen.size >= total);
  await reader;
  assert.equal(seen.size, total);
  const twice = [...seen].filter(([, n]) => n !== 1);
  assert.deepEqual(twice, [], "no message seen more than once");
});

test("an app reads its own messages, and all of a topic it may read; people read all", async () => {
  const topic = "pay.done";
  assert.equal((await shop.post("/v1/messages", { id: "s-1", topic, tag: "card", payload: {} })).status, 201);
  assert.equal((await billing.post("/v1/messages", { id: "b-1", topic, tag: "cash", payload: {} })).status, 201);
  assert.equal((await shop.post("/v1/messages", { id: "s-2", topic, tag: "cash", payload: {} })).status, 201);
  const all = await waitFor("three messages in the feed", async () => {
    const read = await readAll(admin, `topic=${topic}`);
    return read.ids.length === 3 ? read.ids : null;
  });
  assert.deepEqual(all, ["shop/s-1", "billing/b-1", "shop/s-2"]);
  assert.deepEqual((await readAll(shop, `topic=${topic}`)).ids, ["shop/s-1", "shop/s-2"]);
  assert.deepEqual((await readAll(billing, `topic=${topic}`)).ids, ["billing/b-1"]);
  assert.deepEqual((await readAll(ledger, `topic=${topic}`)).ids, all, "readTopics: the whole topic");
  // A viewer operator reads all too.
  const viewer = await admin.post("/v1/operators", { name: "vera", role: "viewer" });
  assert.equal(viewer.status, 201, JSON.stringify(viewer.body));
  assert.deepEqual((await readAll(api(service.url, viewer.body.key), `topic=${topic}`)).ids, all);

  // By subscription: its topic and tags, within what the caller may see.
  const sub = await admin.post("/v1/subscriptions", {
    name: "cashier",
    topic,
    tags: ["cash"],
    endpoint: { type: "http", url: "http://127.0.0.1:9/x" },
    enabled: false,
  });
  assert.equal(sub.status, 201, JSON.stringify(sub.body));
  assert.deepEqual((await readAll(admin, "subscription=cashier")).ids, ["billing/b-1", "shop/s-2"]);
  assert.deepEqual((await readAll(shop, "subscription=cashier")).ids, ["shop/s-2"]);
  assert.deepEqual((await readAll(ledger, "subscription=cashier")).ids, ["billing/b-1", "shop/s-2"]);
});

test("pages follow one another with the cursor, and since/until bound the commit time", async () => {
  const topic = "paged.topic";
  const messages = Array.from({ length: 12 }, (_, i) => ({
    id: `m-${String(i).padStart(2, "0")}`,
    topic,
    key: `k${i}`,
    payload: { i, big: 12345678901234567891n },
  }));
  // The payload's big number is sent as its exact text.
  const raw = JSON.stringify({ messages }, (_, v) => (typeof v === "bigint" ? `@@${v}@@` : v)).replace(/"@@(\d+)@@"/g, "$1");
  assert.equal((await shop.postRaw("/v1/messages/batch", raw)).status, 201);
  await waitFor("twelve in the feed", async () => (await readAll(shop, `topic=${topic}`)).ids.length === 12);
  const one = await page(shop, `topic=${topic}&limit=5`);
  assert.equal(one.items.length, 5);
  assert.equal(one.more, true);
  assert.equal(one.items[0]!.key, "k0");
  const two = await page(shop, `topic=${topic}&limit=5&after=${one.next}`);
  assert.deepEqual(
    two.items.map((m) => m.id),
    ["shop/m-05", "shop/m-06", "shop/m-07", "shop/m-08", "shop/m-09"],
  );
  const three = await page(shop, `topic=${topic}&limit=5&after=${two.next}`);
  assert.deepEqual(
    three.items.map((m) => m.id),
    ["shop/m-10", "shop/m-11"],
  );
  assert.equal(three.more, false);
  // Nothing new: an empty page, the same place to ask from again.
  const four = await page(shop, `topic=${topic}&limit=5&after=${three.next}`);
  assert.deepEqual(four, { items: [], next: three.next, more: false, waiting: false });
  // The payload as sent: the big number keeps its digits.
  const text = await (await fetch(`${service.url}/v1/feed?topic=${topic}&limit=1`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text();
  assert.match(text, /"big":12345678901234567891/);
  assert.match(text, /"committedAt":"\d{4}-\d\d-\d\dT/);

  // since/until: the window of commit times.
  const committedAt = one.items[0]!.committedAt;
  const later = new Date(Date.parse(committedAt) + 1).toISOString();
  assert.equal((await readAll(shop, `topic=${topic}&since=${committedAt}`)).ids.length, 12);
  assert.equal((await readAll(shop, `topic=${topic}&since=${later}`)).ids.length, 0);
  assert.equal((await readAll(shop, `topic=${topic}&until=${later}`, undefined, 2)).ids.length, 12);
  assert.equal((await readAll(shop, `topic=${topic}&until=${committedAt}`)).ids.length, 0);
});

test("a window read with since starts near its start on a long topic, and skips no message committed in it", async () => {
  const topic = "long.topic";
  // 50,000 messages committed three hours ago, 500 to a transaction (each its own place in the feed).
  for (let first = 0; first < 50_000; first += 500) await storeOld(topic, first, 500);
  // Prepared before the window: one committed in it, one whose commit began before it.
  for (const id of ["in", "out"]) {
    assert.equal((await shop.post("/v1/messages", { id, topic, payload: {}, prepare: true, checkAfter: "1h" })).status, 201);
  }
  const blocker = await db.connect();
  let since: string;
  try {
    // The commit of `out` begins (its transaction's time is its committed_at), held inside its
    // statement by a row lock until the window has begun.
    await blocker.query("begin");
    await blocker.query("select 1 from messages where id = 'shop/out' for update");
    const commitOut = shop.post("/v1/messages/out/commit");
    await commitWaitingOnLock();
    since = await sinceNow();
    await blocker.query("rollback");
    assert.equal((await commitOut).status, 200);
  } finally {
    blocker.release();
  }
  const fresh = Array.from({ length: 20 }, (_, i) => `new-${i}`);
  for (const id of fresh.slice(0, 10)) assert.equal((await shop.post("/v1/messages", { id, topic, payload: {} })).status, 201);
  assert.equal((await shop.post("/v1/messages/in/commit")).status, 200);
  assert.equal((await shop.post("/v1/messages/batch", { messages: fresh.slice(10).map((id) => ({ id, topic, payload: {} })) })).status, 201);

  const want = [...fresh.slice(0, 10), "in", ...fresh.slice(10)].map((id) => `shop/${id}`);
  const read = await waitFor("the window's messages in the feed", async () => {
    const all = await readAll(admin, `topic=${topic}&since=${since}`);
    return all.ids.length >= want.length ? all : null;
  });
  assert.deepEqual(read.ids, want, "every message committed in the window, in commit order; `out` committed before it");
  assert.ok(read.requests <= 2, `${read.requests} requests for a window of 21 messages`);
  // The same read from the start cursor given explicitly.
  const start = encodeFeedCursor(FEED_START);
  assert.deepEqual(
    (await page(admin, `topic=${topic}&since=${since}&after=${start}`)).items.map((m) => m.id),
    want,
  );
  // `out` is in the feed, before the window: its transaction began before since.
  const out = (await page(admin, `topic=${topic}&since=${new Date(Date.parse(since) - 60_000).toISOString()}`)).items[0]!;
  assert.equal(out.id, "shop/out");
  assert.ok(out.committedAt < since);
});

test("a transaction whose messages carry commit times older than its own does not make a window read skip a message", async () => {
  // Migration 0023 gave the messages stored before it its transaction, with the times they had
  // committed at: such a transaction says nothing about when it began. Here: `late`, committed in
  // the window by a transaction that began before the old-looking one.
  const topic = "relabelled.topic";
  await storeOld(topic, 0, 500);
  const since = await sinceNow();
  const earlier = await db.connect();
  try {
    await earlier.query("begin");
    await earlier.query("select pg_current_xact_id()");
    // Transactions go by (ids handed out) before the old-looking one.
    await db.query("do $$ begin for i in 1..1000 loop perform pg_current_xact_id(); commit; end loop; end $$");
    await storeOld(topic, 500, 500);
    await earlier.query(
      `insert into messages (id, app, topic, payload, headers, content_hash, state, deliver_at, committed_at)
       values ('shop/late', 'shop', $1, '{}', '{}', sha256('late'), 'committed', now(), now())`,
      [topic],
    );
    await earlier.query("commit");
  } finally {
    earlier.release();
  }
  const ids = await waitFor("late in the feed", async () => {
    const read = await readAll(admin, `topic=${topic}&since=${since}`);
    return read.ids.length > 0 ? read.ids : null;
  });
  assert.deepEqual(ids, ["shop/late"]);
});

test("messages held back by an older transaction elsewhere on the server are announced as waiting, and the SDK's reader waits for them", async () => {
  const start = (await readAll(admin, "topic=held")).next;
  // A transaction begun before the message, in another database of the same server.
  const other = await createTestDatabase("feed_blocker", { empty: true });
  const blocker = new pg.Client({ connectionString: other.url });
  await blocker.connect();
  try {
    await blocker.query("begin");
    await blocker.query("select pg_current_xact_id()");
    assert.equal((await admin.post("/v1/messages", { id: "held-1", topic: "held", payload: {} })).status, 201);
    const held = await page(admin, `topic=held&after=${start}`);
    assert.deepEqual([held.items.length, held.more, held.waiting], [0, false, true], "committed, not served yet, and said so");

    const reader = new TidingsClient({ url: service.url, apiKey: ADMIN_KEY }).feed({ topic: "held", after: start });
    const read = (async () => {
      const ids: string[] = [];
      for await (const m of reader) ids.push(m.id);
      return ids;
    })();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await blocker.query("rollback");
    assert.deepEqual(await read, ["held-1"], "the reader waited for it rather than ending");
    assert.equal(reader.caughtUp, true);
    const after = await page(admin, `topic=held&after=${start}`);
    assert.deepEqual([after.items.map((m) => m.id), after.waiting], [["held-1"], false]);
  } finally {
    await blocker.end();
    await other.drop();
  }
});

test("bad input is answered 400 naming the field", async () => {
  const cases: Array<[string, string]> = [
    ["", "querystring.topic"],
    ["topic=a&subscription=b", "querystring.subscription"],
    ["topic=a&limit=0", "querystring.limit"],
    ["topic=a&limit=5001", "querystring.limit"],
    ["topic=a&limit=ten", "querystring.limit"],
    ["topic=a&after=not-a-cursor", "querystring.after"],
    [`topic=a&after=${Buffer.from("v1.1.x").toString("base64url")}`, "querystring.after"],
    ["topic=a&since=yesterday", "querystring.since"],
    ["topic=a&until=2026-13-01T00:00:00Z", "querystring.until"],
    ["topic=a&since=2026-12-05T10:00:00Z&until=2026-12-05T09:00:00Z", "querystring.until"],
    ["topic=a%20b", "querystring.topic"],
    ["topic=a&page=2", "querystring.page"],
  ];
  for (const [query, field] of cases) {
    const answer = await shop.get(`/v1/feed?${query}`);
    assert.equal(answer.status, 400, `${query}: ${JSON.stringify(answer.body)}`);
    assert.equal(answer.body.error.field, field, query);
  }
  const unknown = await shop.get("/v1/feed?subscription=nobody");
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.error.field, "querystring.subscription");
  assert.equal((await api(service.url, null).get("/v1/feed?topic=a")).status, 401);
});
