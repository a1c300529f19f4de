import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { api } from "./support/api.ts";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";

/** A browser-like client: keeps the session cookie, sends the CSRF token when told to. */
function cookieClient(baseUrl: string) {
  let cookie = "";
  async function call(method: string, path: string, options: { body?: unknown; csrf?: string; headers?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { ...options.headers };
    if (cookie) headers.cookie = cookie;
    if (options.csrf) headers["x-csrf-token"] = options.csrf;
    if (options.body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(baseUrl + path, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
    const setCookie = response.headers.get("set-cookie");
    if (setCookie) cookie = setCookie.split(";")[0]!.endsWith("=") ? "" : setCookie.split(";")[0]!;
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null, setCookie };
  }
  return {
    call,
    get cookie() {
      return cookie;
    },
    set cookie(value: string) {
      cookie = value;
    },
  };
}

describe("console API: sessions, stats, dead letters and re-send jobs", () => {
  let db: TestDatabase;
  let service: RunningService;
  let receiver: Receiver;
  let admin: ReturnType<typeof api>;
  let sql: pg.Client;
  let failing = true;

  before(async () => {
    db = await createTestDatabase("console_api");
    service = await startTestService(db.url);
    receiver = await new Receiver(() => (failing ? 500 : 200)).start();
    admin = api(service.url, ADMIN_KEY);
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
  });
  after(async () => {
    await sql?.end();
    await service?.close();
    await receiver?.stop();
    await db?.drop();
  });

  test("signs in with the admin key only, into an HttpOnly SameSite=Strict cookie", async () => {
    const client = cookieClient(service.url);
    const wrong = await client.call("POST", "/v1/session", { body: { adminKey: "not-the-key-at-all" } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error.field, "adminKey");
    assert.equal(wrong.setCookie, null);

    const ok = await client.call("POST", "/v1/session", { body: { adminKey: ADMIN_KEY } });
    assert.equal(ok.status, 201);
    assert.match(ok.setCookie!, /^tidings_session=[\w-]{40,}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
    assert.equal(typeof ok.body.csrfToken, "string");

    const session = await client.call("GET", "/v1/session");
    assert.equal(session.status, 200);
    assert.equal(session.body.csrfToken, ok.body.csrfToken);
    // The id is kept hashed: the cookie's value is nowhere in the table.
    const { rows } = await sql.query("select encode(id_hash, 'hex') as h from console_sessions");
    assert.ok(rows.length >= 1 && rows.every((r) => !client.cookie.includes(r.h)));
  });

  test("after 10 failed sign-ins an address is refused for a while (429 with Retry-After), the right key included", async () => {
    // A node of its own: the limit is kept per process, and this one's address gets blocked.
    const node = await startTestService(db.url);
    try {
      const client = cookieClient(node.url);
      for (let i = 0; i < 10; i++) {
        assert.equal((await client.call("POST", "/v1/session", { body: { adminKey: `guess-${i}-0123456789` } })).status, 401, `guess ${i}`);
      }
      const response = await fetch(`${node.url}/v1/session`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ adminKey: ADMIN_KEY }),
      });
      assert.equal(response.status, 429);
      const retryAfter = Number(response.headers.get("retry-after"));
      assert.ok(retryAfter > 800 && retryAfter <= 900, `Retry-After ${retryAfter}`);
      assert.equal((await response.json()).error.code, "too_many_requests");
      // Keys on API calls are not affected, nor is another node.
      assert.equal((await api(node.url, ADMIN_KEY).get("/v1/apps")).status, 200);
      assert.equal((await cookieClient(service.url).call("POST", "/v1/session", { body: { adminKey: ADMIN_KEY } })).status, 201);
    } finally {
      await node.close();
    }
  });

  test("refuses a change made with the cookie but without the CSRF token, and accepts it with the token", async () => {
    const client = cookieClient(service.url);
    const { body } = await client.call("POST", "/v1/session", { body: { adminKey: ADMIN_KEY } });
    const sub = { name: "csrf-probe", topic: "csrf.probe", endpoint: { type: "http", url: receiver.url } };

    const forged = await client.call("POST", "/v1/subscriptions", { body: sub });
    assert.equal(forged.status, 403);
    assert.match(forged.body.error.message, /x-csrf-token/);
    const wrongToken = await client.call("POST", "/v1/subscriptions", { body: sub, csrf: "guessed" });
    assert.equal(wrongToken.status, 403);
    assert.equal((await admin.get("/v1/subscriptions/csrf-probe")).status, 404, "nothing was created");

    const reads = await client.call("GET", "/v1/subscriptions");
    assert.equal(reads.status, 200, "reading needs no token");
    const made = await client.call("POST", "/v1/subscriptions", { body: sub, csrf: body.csrfToken });
    assert.equal(made.status, 201);
    assert.equal((await admin.delete("/v1/subscriptions/csrf-probe")).status, 204);
  });

  test("refuses an expired session and a signed-out one", async () => {
    const client = cookieClient(service.url);
    const { body } = await client.call("POST", "/v1/session", { body: { adminKey: ADMIN_KEY } });
    assert.equal((await client.call("GET", "/v1/stats")).status, 200);
    await sql.query("update console_sessions set expires_at = now() - interval '1 second'");
    const expired = await client.call("GET", "/v1/stats");
    assert.equal(expired.status, 401);
    assert.match(expired.body.error.message, /expired/);

    const again = cookieClient(service.url);
    const second = await again.call("POST", "/v1/session", { body: { adminKey: ADMIN_KEY } });
    const cookie = again.cookie;
    assert.equal((await again.call("DELETE", "/v1/session")).status, 403, "signing out is a change: it needs the token");
    const out = await again.call("DELETE", "/v1/session", { csrf: second.body.csrfToken });
    assert.equal(out.status, 204);
    assert.match(out.setCookie!, /Max-Age=0/);
    again.cookie = cookie; // a copy of the old cookie is worthless now
    assert.equal((await again.call("GET", "/v1/stats")).status, 401);
    assert.ok(body.csrfToken);
  });

  test("app keys cannot sign in nor read the console's endpoints", async () => {
    const created = await admin.post("/v1/apps", { name: "shop" });
    const shop = api(service.url, created.body.apiKey);
    const signIn = await api(service.url, null).post("/v1/session", { adminKey: created.body.apiKey });
    assert.equal(signIn.status, 401);
    for (const path of ["/v1/stats", "/v1/deliveries", "/v1/jobs"]) assert.equal((await shop.get(path)).status, 403, path);
    assert.equal((await api(service.url, null).get("/v1/stats")).status, 401);
  });

  test("counts by state, the oldest pending delivery, throughput per minute; dead letters listed", async () => {
    const sub = await admin.post("/v1/subscriptions", {
      name: "ledger",
      topic: "orders.paid",
      endpoint: { type: "http", url: receiver.url },
      retry: { schedule: [], maxAttempts: 1 },
      // 23 failures in a row would open its circuit too (an alert of its own); this test counts dead letters.
      circuit: null,
    });
    assert.equal(sub.status, 201);
    failing = true;
    const ids: string[] = [];
    for (let i = 0; i < 23; i++) ids.push((await admin.post("/v1/messages", { topic: "orders.paid", key: `order-${i}`, payload: { i } })).body.id);
    await waitFor("23 dead deliveries", async () => {
      const stats = (await admin.get("/v1/stats")).body;
      return stats.subscriptions.find((s: any) => s.subscription === "ledger")?.counts.dead === 23 ? stats : null;
    });
    const stats = (await admin.get("/v1/stats")).body;
    assert.equal(stats.messages.committed, 23);
    assert.equal(stats.messages.prepared, 0);
    assert.equal(stats.messages.in_doubt, 0);
    assert.equal(stats.openAlerts, 1, "one alert for the subscription, however many deliveries died");
    assert.equal(stats.deliveries.total.dead, 23);
    assert.equal(stats.throughput.length, 60);
    const sum = (k: string) => stats.throughput.reduce((n: number, m: any) => n + m[k], 0);
    assert.ok(sum("accepted") >= 23);
    assert.equal(sum("dead"), 23);
    assert.equal(stats.oldestPending, null);

    const page1 = await admin.get("/v1/deliveries?state=dead&limit=20");
    assert.equal(page1.status, 200);
    assert.equal(page1.body.items.length, 20);
    assert.equal(page1.body.items[0].messageId, ids[22], "newest first");
    assert.equal(page1.body.items[0].lastStatus, 500);
    const page2 = await admin.get(`/v1/deliveries?state=dead&subscription=ledger&limit=20&cursor=${page1.body.nextCursor}`);
    assert.equal(page2.body.items.length, 3);
    assert.equal(page2.body.nextCursor, null);
    assert.equal((await admin.get("/v1/deliveries?subscription=nope")).status, 404);
  });

  test("a re-send job re-sends every dead delivery in batches, its progress following the work", async () => {
    failing = false;
    const started = await admin.post("/v1/subscriptions/ledger/resend-dead-jobs", { batchSize: 5 });
    assert.equal(started.status, 202);
    assert.equal(started.body.total, 23);
    const job = await waitFor("the job to finish", async () => {
      const j = (await admin.get(`/v1/jobs/${started.body.id}`)).body;
      return j.state === "succeeded" ? j : null;
    });
    assert.deepEqual([job.done, job.total, job.batches, job.batchSize], [23, 23, 5, 5]);
    await waitFor("all 23 delivered", () => receiver.deliveredIds().size === 23);
    const again = await admin.post("/v1/subscriptions/ledger/resend-dead-jobs", {});
    assert.equal(again.body.state, "succeeded", "nothing dead: born finished");
    assert.equal(again.body.total, 0);
    const listed = await admin.get("/v1/jobs?subscription=ledger");
    assert.deepEqual(
      listed.body.items.map((j: any) => j.id),
      [again.body.id, started.body.id],
    );
    assert.equal((await admin.get("/v1/jobs/nope")).status, 404);
  });

  test("a job left behind by a dead node is adopted and finished by another", async () => {
    failing = true;
    await admin.post("/v1/messages", { topic: "orders.paid", key: "orphan", payload: {} });
    await waitFor("a dead delivery", async () => (await admin.get("/v1/deliveries?state=dead")).body.items.length === 1);
    failing = false;
    const subId = (await sql.query("select id from subscriptions where name = 'ledger'")).rows[0].id;
    await sql.query(
      `insert into jobs (id, kind, subscription_id, total, batch_size, owner, heartbeat_at)
       values ('orphan-job', 'resend_dead', $1, 1, 10, 'a-node-that-died', '-infinity')`,
      [subId],
    );
    // A second service process on the same database finds it at start.
    const other = await startTestService(db.url);
    try {
      const job = await waitFor("the orphaned job to be finished", async () => {
        const j = (await admin.get("/v1/jobs/orphan-job")).body;
        return j.state === "succeeded" ? j : null;
      });
      assert.equal(job.done, 1);
    } finally {
      await other.close();
    }
  });

  test("serves the console's files with a strict content security policy, and documents the new endpoints", async () => {
    const page = await fetch(`${service.url}/console`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-security-policy")!, /default-src 'none'; script-src 'self'/);
    assert.match(await page.text(), /<script type="module" src="\/console\/js\/app.js"><\/script>/);
    assert.equal((await fetch(`${service.url}/console/js/app.js`)).headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal((await fetch(`${service.url}/console/../package.json`)).status, 404);
    const doc = (await fetch(`${service.url}/openapi.json`).then((r) => r.json())) as { paths: Record<string, unknown> };
    for (const path of ["/v1/session", "/v1/stats", "/v1/deliveries", "/v1/jobs/{id}", "/v1/subscriptions/{name}/resend-dead-jobs"]) {
      assert.ok(doc.paths[path], path);
    }
  });
});
