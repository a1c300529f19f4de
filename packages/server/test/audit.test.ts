import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { api } from "./support/api.ts";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";

interface Entry {
  id: number;
  at: string;
  actorKind: string;
  actor: string;
  address: string | null;
  action: string;
  target: string | null;
  before: Record<string, any> | null;
  after: Record<string, any> | null;
  detail: Record<string, any> | null;
}

describe("the audit log", () => {
  let db: TestDatabase;
  let service: RunningService;
  let receiver: Receiver;
  let sql: pg.Client;
  const admin = () => api(service.url, ADMIN_KEY);
  /** Every secret the session below is shown: none may appear in the log. */
  const secrets: string[] = [];

  before(async () => {
    db = await createTestDatabase("audit");
    // The sweep runs often here, so that the retention can be seen to work.
    service = await startTestService(db.url, { TIDINGS_RETENTION_INTERVAL: "200ms" });
    receiver = await new Receiver(() => 500).start();
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
  });
  after(async () => {
    await sql?.end();
    await service?.close();
    await receiver?.stop();
    await db?.drop();
  });

  /** The whole log, oldest first, read by a viewer page by page (3 at a time: the cursor is used). */
  async function readAll(viewerKey: string, filter = ""): Promise<Entry[]> {
    const viewer = api(service.url, viewerKey);
    const entries: Entry[] = [];
    let cursor: string | null = null;
    do {
      const page = await viewer.get(`/v1/audit?limit=3${filter}${cursor ? `&cursor=${cursor}` : ""}`);
      assert.equal(page.status, 200, JSON.stringify(page.body));
      entries.push(...page.body.items);
      cursor = page.body.nextCursor;
    } while (cursor);
    return entries.reverse();
  }

  test("a scripted session by the admin key, an operator and an app: the trail is exactly what was done, with before/after and no secret", async () => {
    const hookUrl = `${receiver.url}/billing`;
    // The admin key configures.
    const shop = await admin().post("/v1/apps", { name: "shop" });
    secrets.push(shop.body.apiKey, shop.body.secret);
    const olgaCreated = await admin().post("/v1/operators", { name: "olga", role: "operator" });
    const vicCreated = await admin().post("/v1/operators", { name: "vic", role: "viewer" });
    secrets.push(olgaCreated.body.key, vicCreated.body.key);
    const sub = await admin().post("/v1/subscriptions", {
      name: "billing",
      topic: "orders.paid",
      endpoint: { type: "http", url: hookUrl, headers: { authorization: "Bearer s3cret-header-value" } },
      retry: { schedule: [], maxAttempts: 1 },
      circuit: null,
    });
    assert.equal(sub.status, 201);
    secrets.push(sub.body.secret, "s3cret-header-value");

    const olga = api(service.url, olgaCreated.body.key);
    const app = api(service.url, shop.body.apiKey);
    // Refused calls change nothing and are not in the trail.
    assert.equal((await olga.patch("/v1/subscriptions/billing", { enabled: false })).status, 403);

    // The app sends; its message dies at once (the endpoint answers 500); reading is not audited.
    assert.equal((await app.post("/v1/messages", { id: "m-1", topic: "orders.paid", payload: { n: 1 } })).status, 201);
    await waitFor("m-1 dead", async () => (await app.get("/v1/messages/m-1")).body.deliveries?.[0]?.state === "dead", 10_000);
    assert.equal((await app.get("/v1/messages/m-1")).status, 200);
    // The app re-sends its own message: a hand action by an app's key.
    assert.equal((await app.post("/v1/messages/m-1/resend", {})).body.resent, 1);
    // An app committing its prepared message is its protocol, not recorded; a person rolling one back is.
    assert.equal((await app.post("/v1/messages", { id: "m-2", topic: "orders.paid", payload: {}, prepare: true, checkAfter: "1h" })).status, 201);
    assert.equal((await app.post("/v1/messages", { id: "m-3", topic: "orders.paid", payload: {}, prepare: true, checkAfter: "1h" })).status, 201);
    assert.equal((await app.post("/v1/messages/m-3/commit", {})).status, 200);
    assert.equal((await olga.post("/v1/messages/shop%2Fm-2/rollback", {})).status, 200);
    // The operator marks m-1 dead (its re-sent delivery may have died already: the count says).
    await waitFor("m-1 dead again", async () => (await app.get("/v1/messages/m-1")).body.deliveries?.[0]?.state === "dead", 10_000);
    assert.equal((await olga.post("/v1/messages/shop%2Fm-1/dead", { reason: "customer cancelled" })).body.dead, 0);
    const alert = await waitFor("the subscription's delivery_dead alert", async () =>
      (await olga.get("/v1/alerts")).body.items.find((a: { condition: string }) => a.condition === "delivery_dead"),
    );
    assert.equal((await olga.post(`/v1/alerts/${alert.id}/resolve`)).status, 200);
    assert.equal((await olga.post("/v1/subscriptions/billing/retry-pending")).status, 200);
    // The admin key changes the subscription (a new header value, a new secret) and rotates olga's key.
    const patched = await admin().patch("/v1/subscriptions/billing", {
      rotateSecret: true,
      endpoint: { type: "http", url: hookUrl, headers: { authorization: "Bearer another-s3cret" } },
    });
    assert.equal(patched.status, 200);
    secrets.push(patched.body.secret, "another-s3cret");
    const rotated = await admin().patch("/v1/operators/olga", { rotateKey: true });
    secrets.push(rotated.body.key);
    // The app deletes its message; the admin key deletes the subscription.
    assert.equal((await app.delete("/v1/messages/m-1")).status, 204);
    assert.equal((await admin().delete("/v1/subscriptions/billing")).status, 204);

    const trail = await readAll(vicCreated.body.key);
    assert.deepEqual(
      trail.map((e) => [e.actorKind, e.actor, e.action, e.target]),
      [
        ["admin", "admin key", "app.create", "app/shop"],
        ["admin", "admin key", "operator.create", "operator/olga"],
        ["admin", "admin key", "operator.create", "operator/vic"],
        ["admin", "admin key", "subscription.create", "subscription/billing"],
        ["app", "shop", "message.resend", "message/shop/m-1"],
        ["operator", "olga", "message.rollback", "message/shop/m-2"],
        ["operator", "olga", "message.dead", "message/shop/m-1"],
        ["operator", "olga", "alert.resolve", `alert/${alert.id}`],
        ["operator", "olga", "subscription.retry_pending", "subscription/billing"],
        ["admin", "admin key", "subscription.update", "subscription/billing"],
        ["admin", "admin key", "operator.update", "operator/olga"],
        ["app", "shop", "message.delete", "message/shop/m-1"],
        ["admin", "admin key", "subscription.delete", "subscription/billing"],
      ],
    );
    const [appCreate, olgaCreate, , subCreate, resend, rollback, dead, , retry, subUpdate, olgaUpdate, , subDelete] = trail;
    assert.ok(
      trail.every((e) => e.address === "127.0.0.1"),
      "each entry says where the call came from",
    );
    assert.ok(
      trail.every((e, i) => i === 0 || e.at >= trail[i - 1]!.at),
      "in the order they were done",
    );

    // Configuration: before and after as the API shows them.
    assert.equal(appCreate!.before, null);
    assert.equal(appCreate!.after!.name, "shop");
    assert.deepEqual(olgaCreate!.after, { name: "olga", role: "operator", createdAt: olgaCreate!.after!.createdAt, updatedAt: olgaCreate!.after!.updatedAt });
    assert.deepEqual(subCreate!.after!.endpoint, { type: "http", url: hookUrl, headers: { authorization: "***" } });
    assert.equal(subUpdate!.before!.updatedAt, subCreate!.after!.updatedAt, "the before is the subscription as it was");
    assert.notEqual(subUpdate!.after!.updatedAt, subUpdate!.before!.updatedAt);
    assert.deepEqual(subUpdate!.detail, { request: { rotateSecret: true } }, "a rotation shows, the secret does not");
    assert.deepEqual(olgaUpdate!.detail, { request: { rotateKey: true } });
    assert.equal(olgaUpdate!.before!.role, "operator");
    assert.equal(subDelete!.before!.name, "billing");
    assert.equal(subDelete!.after, null);
    // Hand actions: the options given and what came of them.
    assert.deepEqual(resend!.detail, { result: { resent: 1 } });
    assert.equal(rollback!.detail!.result.state, "rolled_back");
    assert.equal(rollback!.detail!.result.payload, undefined, "a message's payload is not copied into the log");
    assert.deepEqual(dead!.detail, { request: { reason: "customer cancelled" }, result: { dead: 0 } });
    assert.equal(typeof retry!.detail!.result.retried, "number");

    const text = JSON.stringify(trail);
    for (const secret of secrets) assert.ok(secret && !text.includes(secret), `a secret is in the audit log: ${secret?.slice(0, 8)}…`);
    assert.ok(!/whsec_|tdk_|tdo_/.test(text), "no key or signing secret of any kind");

    // Filters: by actor, by action (an object's every action too), by target, by time.
    assert.deepEqual(
      (await readAll(vicCreated.body.key, "&actor=olga")).map((e) => e.action),
      ["message.rollback", "message.dead", "alert.resolve", "subscription.retry_pending"],
    );
    assert.deepEqual(
      (await readAll(vicCreated.body.key, "&action=subscription")).map((e) => e.action),
      ["subscription.create", "subscription.retry_pending", "subscription.update", "subscription.delete"],
    );
    assert.equal((await readAll(vicCreated.body.key, "&action=subscription.update")).length, 1);
    assert.deepEqual(
      (await readAll(vicCreated.body.key, "&target=message%2Fshop%2Fm-1")).map((e) => e.action),
      ["message.resend", "message.dead", "message.delete"],
    );
    const since = encodeURIComponent(resend!.at);
    const until = encodeURIComponent(subUpdate!.at);
    const window = await readAll(vicCreated.body.key, `&since=${since}&until=${until}`);
    assert.equal(window[0]!.id, resend!.id);
    assert.equal(window.at(-1)!.action, "subscription.retry_pending");
    const bad = await admin().get("/v1/audit?since=yesterday");
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, "querystring.since");
    assert.equal((await app.get("/v1/audit")).status, 403, "an app does not read the audit log");
  });

  test("a person's every other action: commits and rollbacks, skip, re-send dead, recover, retry pending, channels, apps, relays — who, what, on what, before/after, no secret", async () => {
    const [{ last }] = (await sql.query("select coalesce(max(id), 0)::int as last from audit_log")).rows;
    const since = new Date(Date.now() - 1000).toISOString();
    const ottoCreated = await admin().post("/v1/operators", { name: "otto", role: "operator" });
    const depotCreated = await admin().post("/v1/apps", { name: "depot" });
    secrets.push(ottoCreated.body.key, depotCreated.body.apiKey, depotCreated.body.secret);
    const otto = api(service.url, ottoCreated.body.key);
    const depot = api(service.url, depotCreated.body.apiKey);
    // Ordered by key, a failure is dead at once (the receiver answers 500): its key waits on it.
    const ledger = await admin().post("/v1/subscriptions", {
      name: "ledger",
      topic: "stock.moved",
      endpoint: { type: "http", url: `${receiver.url}/ledger` },
      ordering: "key",
      onDead: "block",
      retry: { schedule: [], maxAttempts: 1 },
      circuit: null,
    });
    assert.equal(ledger.status, 201, JSON.stringify(ledger.body));
    secrets.push(ledger.body.secret);
    const headOf = async () => (await otto.get("/v1/messages/depot%2Fl-1")).body.deliveries?.[0];
    const deadHead = () => waitFor("l-1's delivery dead", async () => ((await headOf())?.state === "dead" ? headOf() : undefined), 10_000);
    assert.equal((await depot.post("/v1/messages", { id: "l-1", topic: "stock.moved", key: "sku-1", payload: { n: 1 } })).status, 201);
    const head = await deadHead();

    // Hand actions on the subscription's deliveries, by an operator.
    assert.deepEqual((await otto.post(`/v1/deliveries/${head.id}/skip`, {})).body, { id: head.id, skipped: true });
    assert.deepEqual((await otto.post("/v1/subscriptions/ledger/resend-dead", {})).body, { resent: 1, batches: 1 });
    await waitFor("l-1 attempted again", async () => (await headOf()).attempts >= 2, 10_000);
    await deadHead();
    const recovered = await otto.post("/v1/subscriptions/ledger/recover", { since });
    assert.equal(recovered.status, 200, JSON.stringify(recovered.body));
    await waitFor("l-1 attempted a third time", async () => (await headOf()).attempts >= 3, 10_000);
    await deadHead();
    assert.deepEqual((await otto.post("/v1/subscriptions/ledger/retry-pending")).body, { retried: 0 });

    // Prepared messages committed and rolled back by people, one by one and several at once; an app's own bulk commit is not recorded.
    for (const id of ["p-1", "p-2", "p-3"])
      assert.equal((await depot.post("/v1/messages", { id, topic: "stock.counted", payload: {}, prepare: true, checkAfter: "1h" })).status, 201);
    for (const id of ["a-1", "a-2"])
      assert.equal((await admin().post("/v1/messages", { id, topic: "stock.counted", payload: {}, prepare: true, checkAfter: "1h" })).status, 201);
    assert.equal((await otto.post("/v1/messages/depot%2Fp-1/commit", {})).body.state, "committed");
    assert.equal((await otto.post("/v1/messages/depot%2Fp-2/rollback", {})).body.state, "rolled_back");
    assert.deepEqual((await depot.post("/v1/messages/commit", { ids: ["p-3"] })).body.results, [{ id: "p-3", state: "committed" }]);
    assert.deepEqual(
      (await admin().post("/v1/messages/commit", { ids: ["a-1", "a-2", "a-1"] })).body.results.map((r: { state: string }) => r.state),
      ["committed", "committed", "committed"],
    );

    // Channels: their secrets (a Slack URL's token, an SMTP password) never reach the log.
    const slack = await admin().post("/v1/channels", { name: "team-slack", type: "slack", url: `${receiver.url}/services/T01/slackTOKENs3cret` });
    assert.equal(slack.status, 201, JSON.stringify(slack.body));
    const smtp = { host: "127.0.0.1", port: 2525, tls: "none", username: "tidings", from: "tidings@example.test", to: ["oncall@example.test"] };
    const mail = await admin().post("/v1/channels", { name: "mail-oncall", type: "email", smtp: { ...smtp, password: "smtpPASSs3cret" } });
    assert.equal(mail.status, 201, JSON.stringify(mail.body));
    secrets.push("slackTOKENs3cret", "smtpPASSs3cret", "slackTOKEN2s3cret", "smtpPASS2s3cret");
    const tested = await otto.post(`/v1/channels/${slack.body.id}/test`);
    assert.deepEqual([tested.body.ok, tested.body.statusCode], [false, 500]);
    const slackSaved = await admin().patch(`/v1/channels/${slack.body.id}`, { url: `${receiver.url}/services/T02/slackTOKEN2s3cret`, perMinute: 12 });
    assert.equal(slackSaved.status, 200, JSON.stringify(slackSaved.body));
    assert.equal((await admin().patch(`/v1/channels/${mail.body.id}`, { smtp: { ...smtp, password: "smtpPASS2s3cret" } })).status, 200);
    assert.equal((await admin().delete(`/v1/channels/${slack.body.id}`)).status, 204);
    assert.equal((await admin().delete(`/v1/channels/${mail.body.id}`)).status, 204);

    // A relay that will not come back is forgotten; the app is changed, then deleted.
    const beat = { name: "outbox-1", pending: 0, failed: 0, oldestPendingSeconds: null, lastSentAt: null };
    assert.equal((await depot.post("/v1/relays/heartbeat", beat)).status, 204);
    assert.equal((await otto.delete("/v1/relays/depot/outbox-1")).status, 204);
    const depotSaved = await admin().patch("/v1/apps/depot", { checkUrl: `${receiver.url}/check`, rotateKey: true });
    assert.equal(depotSaved.status, 200, JSON.stringify(depotSaved.body));
    secrets.push(depotSaved.body.apiKey);
    assert.equal((await admin().delete("/v1/apps/depot")).status, 204);

    const trail = (await readAll(ottoCreated.body.key)).filter((e) => e.id > last);
    const slackTarget = `channel/${slack.body.id}`;
    const mailTarget = `channel/${mail.body.id}`;
    assert.deepEqual(
      trail.map((e) => [e.actor, e.action, e.target]),
      [
        ["admin key", "operator.create", "operator/otto"],
        ["admin key", "app.create", "app/depot"],
        ["admin key", "subscription.create", "subscription/ledger"],
        ["otto", "delivery.skip", `delivery/${head.id}`],
        ["otto", "subscription.resend_dead", "subscription/ledger"],
        ["otto", "subscription.recover", "subscription/ledger"],
        ["otto", "subscription.retry_pending", "subscription/ledger"],
        ["otto", "message.commit", "message/depot/p-1"],
        ["otto", "message.rollback", "message/depot/p-2"],
        ["admin key", "message.commit", "message/a-1, message/a-2"],
        ["admin key", "channel.create", slackTarget],
        ["admin key", "channel.create", mailTarget],
        ["otto", "channel.test", slackTarget],
        ["admin key", "channel.update", slackTarget],
        ["admin key", "channel.update", mailTarget],
        ["admin key", "channel.delete", slackTarget],
        ["admin key", "channel.delete", mailTarget],
        ["otto", "relay.forget", "relay/depot/outbox-1"],
        ["admin key", "app.update", "app/depot"],
        ["admin key", "app.delete", "app/depot"],
      ],
    );
    assert.ok(
      trail.every((e) => e.actorKind === (e.actor === "otto" ? "operator" : "admin")),
      "each entry says which kind of person did it",
    );
    const [
      ,
      ,
      ,
      skip,
      resendDead,
      recover,
      retryPending,
      commit,
      rollback,
      bulkCommit,
      slackCreate,
      mailCreate,
      test,
      slackUpdate,
      mailUpdate,
      slackDelete,
      mailDelete,
      forget,
      appUpdate,
      appDelete,
    ] = trail;

    // Hand actions: no before/after; the options given and what came of them.
    for (const e of [skip, resendDead, recover, retryPending, commit, rollback, bulkCommit, test, forget])
      assert.deepEqual([e!.before, e!.after], [null, null], e!.action);
    assert.deepEqual(skip!.detail, { result: { id: head.id, skipped: true } });
    assert.deepEqual(resendDead!.detail, { result: { resent: 1, batches: 1 } });
    assert.deepEqual(recover!.detail!.request, { since });
    assert.deepEqual([recover!.detail!.result.kind, recover!.detail!.result.state, recover!.detail!.result.done], ["recover", "succeeded", 1]);
    assert.deepEqual(retryPending!.detail, { result: { retried: 0 } });
    assert.equal(commit!.detail!.result.state, "committed");
    assert.equal(rollback!.detail!.result.state, "rolled_back");
    assert.equal(commit!.detail!.result.payload, undefined, "a message's payload is not copied into the log");
    assert.deepEqual(bulkCommit!.detail!.request, { ids: ["a-1", "a-2", "a-1"] });
    assert.deepEqual(test!.detail!.result.statusCode, 500);
    assert.deepEqual(forget!.detail, {});

    // Configuration: the channel as the API shows it, masked, before and after.
    const maskedSlack = `${receiver.url}/services/***`;
    assert.equal(slackCreate!.before, null);
    assert.deepEqual([slackCreate!.after!.id, slackCreate!.after!.name, slackCreate!.after!.url], [slack.body.id, "team-slack", maskedSlack]);
    assert.deepEqual(mailCreate!.after!.smtp, { ...smtp, to: ["oncall@example.test"] }, "the SMTP settings without the password");
    assert.deepEqual([slackUpdate!.before!.perMinute, slackUpdate!.before!.url], [6, maskedSlack]);
    assert.deepEqual([slackUpdate!.after!.perMinute, slackUpdate!.after!.url], [12, maskedSlack]);
    assert.deepEqual([mailUpdate!.before!.smtp, mailUpdate!.after!.smtp], [mailCreate!.after!.smtp, mailCreate!.after!.smtp]);
    assert.equal(mailUpdate!.before!.updatedAt, mailCreate!.after!.updatedAt, "the before is the channel as it was");
    assert.deepEqual([slackDelete!.before!.name, slackDelete!.before!.perMinute, slackDelete!.after], ["team-slack", 12, null]);
    assert.deepEqual([mailDelete!.before!.name, mailDelete!.after], ["mail-oncall", null]);
    assert.deepEqual([appUpdate!.before!.checkUrl, appUpdate!.after!.checkUrl], [null, `${receiver.url}/check`]);
    assert.deepEqual(appUpdate!.detail, { request: { rotateKey: true } });
    assert.deepEqual([appDelete!.before!.name, appDelete!.before!.checkUrl, appDelete!.after], ["depot", `${receiver.url}/check`, null]);

    const text = JSON.stringify(trail);
    for (const secret of secrets) assert.ok(secret && !text.includes(secret), `a secret is in the audit log: ${secret?.slice(0, 8)}…`);
    assert.ok(!/whsec_|tdk_|tdo_|s3cret/.test(text), "no key, signing secret, token or password of any kind");
    assert.deepEqual(
      (await readAll(ottoCreated.body.key, `&target=${encodeURIComponent(slackTarget)}`)).map((e) => e.action),
      ["channel.create", "channel.test", "channel.update", "channel.delete"],
      "a channel's every entry is found by its target",
    );
  });

  test("the log is append-only: no update, delete or truncate; the retention sweep removes only what is past TIDINGS_AUDIT_RETENTION", async () => {
    const before = (await sql.query("select count(*)::int as n from audit_log")).rows[0].n;
    assert.ok(before > 0);
    await assert.rejects(sql.query("update audit_log set actor = 'someone else'"), /append-only \(UPDATE refused\)/);
    await assert.rejects(sql.query("delete from audit_log"), /append-only \(DELETE refused\)/);
    await assert.rejects(sql.query("truncate audit_log"), /append-only \(TRUNCATE refused\)/);
    // An entry 91 days old (the default retention is 90 days) goes with the next sweep; the others stay.
    const old = await sql.query(
      "insert into audit_log (at, actor_kind, actor, action) values (now() - interval '91 days', 'admin', 'admin key', 'app.create') returning id",
    );
    await waitFor("the old entry swept", async () => (await sql.query("select 1 from audit_log where id = $1", [old.rows[0].id])).rowCount === 0, 10_000);
    assert.equal((await sql.query("select count(*)::int as n from audit_log")).rows[0].n, before);
  });

  test("a change whose entry cannot be written is answered 500 audit_failed, saying it was made", async () => {
    // The database refuses this one entry (as a full disk or a broken constraint would).
    await sql.query("alter table audit_log add constraint refuse_for_test check (target <> 'app/unrecorded') not valid");
    try {
      const created = await admin().post("/v1/apps", { name: "unrecorded" });
      assert.equal(created.status, 500);
      assert.equal(created.body.error.code, "audit_failed");
      assert.match(created.body.error.message, /app\.create was done, but its audit entry could not be written/);
      assert.equal((await admin().get("/v1/apps/unrecorded")).status, 200, "the change itself was made");
    } finally {
      await sql.query("alter table audit_log drop constraint refuse_for_test");
    }
  });
});
