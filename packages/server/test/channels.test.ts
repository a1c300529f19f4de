import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import type { RunningService } from "../src/runtime/service.ts";
import { api } from "./support/api.ts";
import { decoded, startSmtp, verify } from "./support/notifications.ts";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, spawnService, startTestService, type ServiceProcess } from "@tidings/testkit/service";
import { stillAfter, waitFor } from "@tidings/testkit/wait";

/** A local HTTP server that never answers. */
async function startHanging(): Promise<{ url: string; hits: number[]; close(): Promise<void> }> {
  const hits: number[] = [];
  const server: Server = createServer((req) => {
    hits.push(Date.now());
    req.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hang`,
    hits,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Opens `count` alerts of `condition` in one statement, each on a subject of its own
 * ("subscription orders-N"); the alerts' own trigger writes their opened events, whose ids it
 * answers (read in the same transaction when `client` holds one open).
 */
async function openAlerts(client: pg.Pool | pg.PoolClient, condition: string, count: number): Promise<number[]> {
  const made = await client.query(
    `insert into alerts (condition, subject, detail, state, count, first_at, last_at, link, next_step)
     select $1, 'subscription orders-' || n, 'a delivery of orders-' || n || ' is dead after 9 attempts', 'open', 1, now(), now(),
            '#/subscriptions/orders-' || n, 'fix the endpoint, then re-send its dead deliveries'
       from (select (extract(epoch from clock_timestamp()) * 1000000)::bigint * 100 + g as n from generate_series(1, $2::int) g) made
     returning id`,
    [condition, count],
  );
  const events = await client.query("select id from alert_events where alert_id = any ($1::bigint[]) order by id", [made.rows.map((r) => r.id)]);
  return events.rows.map((r) => Number(r.id));
}

describe("notification channels", () => {
  let db: TestDatabase;
  let service: RunningService;
  let admin: ReturnType<typeof api>;
  let sql: pg.Pool;
  let receiver: Receiver;
  /** Receiver paths answered 500. */
  const down = new Set<string>();

  before(async () => {
    db = await createTestDatabase("channels");
    // A short notification deadline, so that a hanging channel is cut within the test.
    service = await startTestService(db.url, { TIDINGS_NOTIFY_TIMEOUT: "1500ms" });
    admin = api(service.url, ADMIN_KEY);
    sql = new pg.Pool({ connectionString: db.url, max: 3 });
    receiver = await new Receiver((r) => (down.has(r.path) ? 500 : 200)).start();
  });
  after(async () => {
    await service?.close();
    await receiver?.stop();
    await sql?.end();
    await db?.drop();
  });

  /**
   * `count` alerts of `condition` opened in one statement, their events written by the alerts'
   * own trigger (the notifier sees them all at once). Returns the events' ids.
   */
  async function raise(condition: string, count = 1): Promise<number[]> {
    return openAlerts(sql, condition, count);
  }

  /** A webhook channel to `path` of the receiver, for the events of `condition` only. */
  async function webhook(name: string, condition: string, extra: Record<string, unknown> = {}) {
    const created = await admin.post("/v1/channels", {
      name,
      type: "webhook",
      url: `${receiver.url}/${name}`,
      filter: { conditions: [condition] },
      retry: { schedule: ["300ms"] },
      ...extra,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return created.body as { id: number; secret: string };
  }

  const at = (name: string) => receiver.received.filter((r) => r.path === `/${name}`);

  test("a webhook channel sends one alert event, signed per Standard Webhooks, saying what happened, what to do and where", async () => {
    const channel = await webhook("hook-one", "t_one");
    assert.match(channel.secret, /^whsec_/);
    const [id] = await raise("t_one");
    const got = await waitFor("the notification", () => at("hook-one")[0]);
    const body = verify(channel.secret, got);
    assert.equal(body.type, "alerts");
    assert.equal(body.events.length, 1);
    assert.equal(body.events[0]!.id, id);
    assert.equal(body.events[0]!.nextStep, "fix the endpoint, then re-send its dead deliveries");
    const subject = (await sql.query("select subject from alert_events where id = $1", [id])).rows[0].subject as string;
    assert.equal(body.events[0]!.url, `${service.url}/console/#/subscriptions/${subject.replace("subscription ", "")}`);
    assert.match(body.title, /t_one opened: subscription orders-\d+/);
    assert.match(body.text, /Next step: fix the endpoint/);
    assert.match(body.text, new RegExp(`Open: ${service.url}/console/#/subscriptions/orders-\\d+`));
    // The console answers at that address.
    assert.equal((await fetch(`${service.url}/console/`)).status, 200);
    const shown = await waitFor("the channel's state", async () => {
      const r = await admin.get(`/v1/channels/${channel.id}`);
      return r.body.state.sent === 1 ? r.body : null;
    });
    assert.equal(shown.state.waiting, 0);
    assert.equal(shown.state.lastError, null);
    assert.equal(shown.recent[0].events, 1);
    assert.equal(shown.recent[0].ok, true);
    await admin.delete(`/v1/channels/${channel.id}`);
  });

  test("a burst of five events in one transaction is one notification listing five, with counts per condition and event", async () => {
    const channel = await webhook("hook-burst", "t_burst");
    const ids = await raise("t_burst", 5);
    const got = await waitFor("the digest", () => at("hook-burst")[0]);
    const body = verify(channel.secret, got);
    assert.deepEqual(
      body.events.map((e) => e.id),
      ids,
    );
    assert.deepEqual(body.counts, [{ condition: "t_burst", event: "opened", count: 5 }]);
    assert.match(body.title, /5 alert events: 5 t_burst opened/);
    assert.equal((body.text.match(/Next step:/g) ?? []).length, 5);
    await stillAfter("one notification only", () => at("hook-burst").length === 1, 500);
    await admin.delete(`/v1/channels/${channel.id}`);
  });

  test("an event whose transaction commits after a later event's is told too, never skipped", async () => {
    const channel = await webhook("hook-order", "t_order");
    const slow = await sql.connect();
    try {
      await slow.query("begin");
      const [early] = await openAlerts(slow, "t_order", 1);
      const [late] = await raise("t_order");
      assert.ok(late! > early!, "the later event has the higher id");
      // The channel polls every 100 ms: had it read the later event, its place would now be past the earlier one.
      await stillAfter("nothing told while an earlier event's transaction is open", () => at("hook-order").length === 0, 600);
      await slow.query("commit");
      await waitFor("both told", () => new Set(at("hook-order").flatMap((r) => verify(channel.secret, r).events.map((e) => e.id))).size === 2 || null);
    } finally {
      slow.release();
    }
    await admin.delete(`/v1/channels/${channel.id}`);
  });

  test("the rate limit holds notifications back; what waits meanwhile goes as one digest when a slot opens", async () => {
    const channel = await webhook("hook-limited", "t_limit", { perMinute: 1 });
    await raise("t_limit");
    await waitFor("the first notification", () => at("hook-limited").length === 1 || null);
    const later = await raise("t_limit", 3);
    await stillAfter("no second notification within the minute", () => at("hook-limited").length === 1, 1000);
    const held = await admin.get(`/v1/channels/${channel.id}`);
    assert.equal(held.body.state.waiting, 3);
    assert.ok(held.body.state.nextAttemptAt !== null && Date.parse(held.body.state.nextAttemptAt) > Date.now() + 50_000, held.body.state.nextAttemptAt);
    // A minute passes (its notification of the last minute moves out of the window).
    await sql.query("update channel_notifications set at = at - interval '61 seconds' where channel_id = $1", [channel.id]);
    await sql.query("update notification_channels set not_before = now() where id = $1", [channel.id]);
    const second = await waitFor("the digest of what waited", () => at("hook-limited")[1]);
    assert.deepEqual(
      verify(channel.secret, second).events.map((e) => e.id),
      later,
    );
    await admin.delete(`/v1/channels/${channel.id}`);
  });

  test("a channel answering 500 is retried on its schedule with its last error shown, and another channel is not held back", async () => {
    down.add("/hook-down");
    const failing = await webhook("hook-down", "t_down");
    const healthy = await webhook("hook-up", "t_down");
    const raisedAt = Date.now();
    await raise("t_down");
    const ok = await waitFor("the healthy channel's notification", () => at("hook-up")[0]);
    assert.ok(ok.at - raisedAt < 3000, `the healthy channel waited ${ok.at - raisedAt} ms`);
    await waitFor("three tries of the failing one", () => at("hook-down").length >= 3 || null);
    const shown = await waitFor("its last error", async () => {
      const r = await admin.get(`/v1/channels/${failing.id}`);
      return r.body.state.failures >= 2 ? r.body : null;
    });
    assert.match(shown.state.lastError, /^HTTP 500/);
    assert.equal(shown.state.waiting, 1);
    assert.equal(at("hook-up").length, 1);
    // The endpoint is back: the same event goes through, and the error count is cleared.
    down.delete("/hook-down");
    const tries = at("hook-down").length;
    await waitFor("the retry that goes through", () => at("hook-down").find((r) => r.status === 200));
    const ids = at("hook-down").map((r) => verify(failing.secret, r).events[0]!.id);
    assert.equal(new Set(ids).size, 1, "every try carried the same event");
    assert.ok(at("hook-down").length > tries);
    const fixed = await waitFor("cleared failures", async () => {
      const r = await admin.get(`/v1/channels/${failing.id}`);
      return r.body.state.failures === 0 && r.body.state.waiting === 0 ? r.body : null;
    });
    assert.equal(fixed.state.sent, 1);
    await admin.delete(`/v1/channels/${failing.id}`);
    await admin.delete(`/v1/channels/${healthy.id}`);
  });

  test("a hanging channel is cut by the deadline and retried, while another channel is told at once", async () => {
    const hanging = await startHanging();
    try {
      const stuck = await admin.post("/v1/channels", {
        name: "hook-hang",
        type: "webhook",
        url: hanging.url,
        filter: { conditions: ["t_hang"] },
        retry: { schedule: ["300ms"] },
      });
      assert.equal(stuck.status, 201);
      const quick = await webhook("hook-quick", "t_hang");
      const raisedAt = Date.now();
      await raise("t_hang");
      const ok = await waitFor("the quick channel's notification", () => at("hook-quick")[0]);
      assert.ok(ok.at - raisedAt < 1500, `the quick channel waited ${ok.at - raisedAt} ms behind the hanging one`);
      const shown = await waitFor(
        "the hanging channel's timeout",
        async () => {
          const r = await admin.get(`/v1/channels/${stuck.body.id}`);
          return r.body.state.lastError ? r.body : null;
        },
        10_000,
      );
      assert.equal(shown.state.lastError, "timeout after 1500ms");
      const cutAfter = Date.parse(shown.state.lastErrorAt) - hanging.hits[0]!;
      assert.ok(cutAfter >= 1400 && cutAfter < 3000, `cut after ${cutAfter} ms`);
      await waitFor("a retry of the hanging channel", () => hanging.hits.length >= 2 || null, 10_000);
      await admin.delete(`/v1/channels/${stuck.body.id}`);
      await admin.delete(`/v1/channels/${quick.id}`);
    } finally {
      await hanging.close();
    }
  });

  test("a Slack-compatible channel POSTs {text, blocks} with the next step and the console link; its URL's token is masked", async () => {
    const token = "T000/B000/XXXXsecretTOKENxxxx";
    const created = await admin.post("/v1/channels", {
      name: "slack-ops",
      type: "slack",
      url: `${receiver.url}/services/${token}`,
      filter: { conditions: ["t_slack"] },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.url, `${receiver.url}/services/***`);
    assert.equal(created.body.secret, undefined);
    await raise("t_slack", 2);
    const got = await waitFor("the Slack message", () => receiver.received.find((r) => r.path === `/services/${token}`));
    const body = JSON.parse(got.body) as { text: string; blocks: { type: string; text?: { type: string; text: string } }[] };
    assert.deepEqual(Object.keys(body).sort(), ["blocks", "text"]);
    assert.match(body.text, /2 alert events: 2 t_slack opened/);
    assert.equal(body.blocks[0]!.type, "header");
    assert.equal(body.blocks[0]!.text!.type, "plain_text");
    const sections = body.blocks.filter((b) => b.type === "section").map((b) => b.text!.text);
    assert.equal(sections.length, 3);
    assert.match(sections[1]!, /\*Next step:\* fix the endpoint/);
    assert.match(sections[1]!, new RegExp(`<${service.url}/console/#/subscriptions/orders-\\d+\\|Open in the console>`));
    assert.equal(got.headers["webhook-signature"], undefined);
    // Sent back as shown, the URL keeps its token.
    const patched = await admin.patch(`/v1/channels/${created.body.id}`, { url: created.body.url, perMinute: 30 });
    assert.equal(patched.status, 200);
    const tested = await admin.post(`/v1/channels/${created.body.id}/test`);
    assert.equal(tested.status, 200);
    assert.equal(tested.body.ok, true);
    assert.equal(tested.body.statusCode, 200);
    const test = JSON.parse(receiver.received.filter((r) => r.path === `/services/${token}`).at(-1)!.body);
    assert.match(test.text, /Test notification/);
    for (const path of ["/v1/channels", `/v1/channels/${created.body.id}`]) {
      const text = JSON.stringify((await admin.get(path)).body);
      assert.ok(!text.includes("XXXXsecretTOKEN"), `${path} shows the Slack token`);
    }
    await admin.delete(`/v1/channels/${created.body.id}`);
  });

  test("an email channel sends through SMTP (with its login) a mail whose subject and text say what happened, with the link", async () => {
    const smtp = await startSmtp({ user: "tidings", pass: "smtp-pass-s3cret" });
    try {
      const created = await admin.post("/v1/channels", {
        name: "mail-oncall",
        type: "email",
        smtp: {
          host: "127.0.0.1",
          port: smtp.port,
          tls: "none",
          username: "tidings",
          password: "smtp-pass-s3cret",
          from: "tidings@example.test",
          to: ["oncall@example.test"],
        },
        filter: { conditions: ["t_mail"] },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.smtp.password, "***");
      await raise("t_mail");
      const mail = await waitFor("the mail", () => smtp.mails[0]);
      assert.equal(mail.user, "tidings");
      assert.equal(mail.from, "tidings@example.test");
      assert.deepEqual(mail.to, ["oncall@example.test"]);
      const text = decoded(mail.raw);
      assert.match(text, /^Subject: \[Tidings\] t_mail opened: subscription orders-\d+/m);
      assert.match(text, /Next step: fix the endpoint, then re-send its dead deliveries/);
      assert.match(text, new RegExp(`Open: ${service.url}/console/#/subscriptions/orders-\\d+`));
      // Send a test, by hand.
      const tested = await admin.post(`/v1/channels/${created.body.id}/test`);
      assert.equal(tested.body.ok, true, JSON.stringify(tested.body));
      assert.equal(tested.body.statusCode, 250);
      await waitFor("the test mail", () => smtp.mails.find((m) => /Test notification/.test(decoded(m.raw))));
      // The password sent back masked is kept; a wrong one fails the test, saying why, without the password.
      assert.equal((await admin.patch(`/v1/channels/${created.body.id}`, { smtp: { ...created.body.smtp } })).status, 200);
      assert.equal((await admin.post(`/v1/channels/${created.body.id}/test`)).body.ok, true);
      const wrong = await admin.patch(`/v1/channels/${created.body.id}`, { smtp: { ...created.body.smtp, password: "not-it" } });
      assert.equal(wrong.status, 200);
      const refused = await admin.post(`/v1/channels/${created.body.id}/test`);
      assert.equal(refused.body.ok, false);
      assert.match(refused.body.error, /invalid username or password/i);
      assert.ok(!refused.body.error.includes("not-it"));
      for (const path of ["/v1/channels", `/v1/channels/${created.body.id}`]) {
        const text = JSON.stringify((await admin.get(path)).body);
        assert.ok(!text.includes("smtp-pass-s3cret") && !text.includes("not-it"), `${path} shows the SMTP password`);
      }
      await admin.delete(`/v1/channels/${created.body.id}`);
    } finally {
      await smtp.close();
    }
  });

  test("send a test: a webhook's is signed; a failing endpoint answers what happened; the secret is shown once", async () => {
    const channel = await webhook("hook-test", "t_never");
    const tested = await admin.post(`/v1/channels/${channel.id}/test`);
    assert.equal(tested.status, 200);
    assert.deepEqual({ ok: tested.body.ok, statusCode: tested.body.statusCode, error: tested.body.error }, { ok: true, statusCode: 200, error: null });
    const body = verify(channel.secret, at("hook-test").at(-1)!);
    assert.equal(body.type, "test");
    down.add("/hook-test");
    const failed = await admin.post(`/v1/channels/${channel.id}/test`);
    assert.equal(failed.body.ok, false);
    assert.equal(failed.body.statusCode, 500);
    assert.match(failed.body.error, /^HTTP 500/);
    down.delete("/hook-test");
    const shown = await admin.get(`/v1/channels/${channel.id}`);
    assert.equal(shown.body.secret, undefined);
    assert.ok(!JSON.stringify(shown.body).includes(channel.secret.slice(6)));
    const rotated = await admin.patch(`/v1/channels/${channel.id}`, { rotateSecret: true });
    assert.match(rotated.body.secret, /^whsec_/);
    assert.notEqual(rotated.body.secret, channel.secret);
    assert.equal((await admin.post(`/v1/channels/${channel.id}/test`)).body.ok, true);
    verify(rotated.body.secret, at("hook-test").at(-1)!);
    assert.equal((await admin.post("/v1/channels/999999/test")).status, 404);
    await admin.delete(`/v1/channels/${channel.id}`);
  });

  test("bad input is refused with 400 naming the field", async () => {
    const cases: [unknown, string][] = [
      [{ name: "x", type: "webhook" }, "url"],
      [{ name: "x", type: "pager", url: "http://127.0.0.1/" }, "type"],
      [{ name: "Bad Name", type: "webhook", url: "http://127.0.0.1/" }, "name"],
      [{ name: "x", type: "webhook", url: "ftp://127.0.0.1/" }, "url"],
      [{ name: "x", type: "slack", url: "http://169.254.169.254/latest" }, "url"],
      [{ name: "x", type: "email" }, "smtp"],
      [{ name: "x", type: "email", smtp: { host: "127.0.0.1", from: "not an address", to: ["a@b.test"] } }, "smtp.from"],
      [{ name: "x", type: "email", smtp: { host: "127.0.0.1", from: "a@b.test", to: ["a@b.test", "nope"] } }, "smtp.to[1]"],
      [{ name: "x", type: "email", smtp: { host: "127.0.0.1", from: "a@b.test", to: [] } }, "smtp.to"],
      [{ name: "x", type: "webhook", url: "http://127.0.0.1/", smtp: { host: "h", from: "a@b.test", to: ["a@b.test"] } }, "smtp"],
      [{ name: "x", type: "webhook", url: "http://127.0.0.1/", perMinute: 0 }, "perMinute"],
      [{ name: "x", type: "webhook", url: "http://127.0.0.1/", retry: { schedule: ["soon"] } }, "retry.schedule[0]"],
      [{ name: "x", type: "webhook", url: "http://127.0.0.1/", filter: { events: ["exploded"] } }, "filter.events[0]"],
      [{ name: "x", type: "webhook", url: "http://127.0.0.1/", colour: "red" }, "colour"],
    ];
    for (const [body, field] of cases) {
      const r = await admin.post("/v1/channels", body);
      assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.status}`);
      assert.equal(r.body.error.field, field, `${JSON.stringify(body)} → ${JSON.stringify(r.body)}`);
    }
    const channel = await webhook("hook-input", "t_never");
    assert.equal((await admin.patch(`/v1/channels/${channel.id}`, { smtp: { host: "h", from: "a@b.test", to: ["a@b.test"] } })).body.error.field, "smtp");
    assert.equal((await admin.patch(`/v1/channels/${channel.id}`, { url: "not a url" })).body.error.field, "url");
    assert.equal((await admin.post("/v1/channels", { name: "hook-input", type: "webhook", url: "http://127.0.0.1/" })).status, 409);
    assert.equal((await admin.get("/v1/channels/abc")).body.error.field, "params.id");
    assert.equal((await admin.get("/v1/channels/424242")).status, 404);
    assert.equal((await api(service.url, null).get("/v1/channels")).status, 401);
    await admin.delete(`/v1/channels/${channel.id}`);
  });
});

describe("notification channels under the endpoint network policy", () => {
  let db: TestDatabase;
  let service: RunningService;
  let receiver: Receiver;

  before(async () => {
    db = await createTestDatabase("channels_policy");
    service = await startTestService(db.url, { TIDINGS_ENDPOINT_DENY: "127.0.0.0/8,::1/128" });
    receiver = await new Receiver(() => 200).start();
  });
  after(async () => {
    await service?.close();
    await receiver?.stop();
    await db?.drop();
  });

  test("a denied address is refused when saved (400 naming the field) and a name resolving into it fails each send", async () => {
    const admin = api(service.url, ADMIN_KEY);
    const port = new URL(receiver.url).port;
    const literal = await admin.post("/v1/channels", { name: "denied", type: "webhook", url: `http://127.0.0.1:${port}/` });
    assert.equal(literal.status, 400);
    assert.equal(literal.body.error.field, "url");
    const smtp = await admin.post("/v1/channels", {
      name: "denied-mail",
      type: "email",
      smtp: { host: "127.0.0.1", port: 2525, from: "a@b.test", to: ["c@d.test"] },
    });
    assert.equal(smtp.body.error.field, "smtp.host");
    for (const [name, body] of [
      ["by-name", { type: "webhook", url: `http://localhost:${port}/` }],
      ["by-name-mail", { type: "email", smtp: { host: "localhost", port: Number(port), tls: "none", from: "a@b.test", to: ["c@d.test"] } }],
    ] as const) {
      const created = await admin.post("/v1/channels", { name, ...body });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const tested = await admin.post(`/v1/channels/${created.body.id}/test`);
      assert.equal(tested.body.ok, false);
      assert.match(tested.body.error, /refused by the endpoint network policy: localhost resolves to/);
    }
    assert.equal(receiver.received.length, 0);
  });
});

describe("notification channels across service processes", () => {
  let db: TestDatabase;
  let services: ServiceProcess[] = [];
  let receiver: Receiver;
  let sql: pg.Pool;

  before(async () => {
    db = await createTestDatabase("channels_two");
    receiver = await new Receiver((r) => (r.path.startsWith("/down") ? 500 : 200)).start();
    sql = new pg.Pool({ connectionString: db.url, max: 3 });
    const env = { DATABASE_URL: db.url, TIDINGS_POLL_INTERVAL: "20ms", TIDINGS_LOG_LEVEL: "debug" };
    services = await Promise.all([spawnService(env), spawnService(env)]);
  });
  after(async () => {
    await Promise.all(services.map((s) => s.kill("SIGTERM")));
    await receiver?.stop();
    await sql?.end();
    await db?.drop();
  });

  test("two service processes on one database send each event once", async () => {
    const admin = api(services[0]!.url, ADMIN_KEY);
    const channels = [];
    for (const name of ["first", "second", "third"]) {
      const created = await admin.post("/v1/channels", { name, type: "webhook", url: `${receiver.url}/${name}`, perMinute: 600 });
      assert.equal(created.status, 201);
      channels.push(created.body as { id: number; name: string; secret: string });
    }
    // A failing Slack channel and a failing mail login, whose secrets must stay out of the logs.
    const slack = await admin.post("/v1/channels", {
      name: "slack-down",
      type: "slack",
      url: `${receiver.url}/down/services/T1/B1/zzSLACKTOKENzz`,
      retry: { schedule: ["200ms"] },
    });
    assert.equal(slack.status, 201);
    const mail = await admin.post("/v1/channels", {
      name: "mail-down",
      type: "email",
      smtp: {
        host: "127.0.0.1",
        port: Number(new URL(receiver.url).port),
        tls: "none",
        username: "u",
        password: "zzSMTPPASSzz",
        from: "a@b.test",
        to: ["c@d.test"],
      },
      retry: { schedule: ["200ms"] },
    });
    assert.equal(mail.status, 201);
    // Events one by one, as alerts come: each process polls every 20 ms and races for every channel.
    const raised: number[] = [];
    for (let i = 0; i < 40; i++) {
      raised.push(...(await openAlerts(sql, "delivery_dead", 1)));
      await new Promise((r) => setTimeout(r, 15));
    }
    for (const channel of channels) {
      const told = () => receiver.received.filter((r) => r.path === `/${channel.name}`).flatMap((r) => verify(channel.secret, r).events.map((e) => e.id));
      await waitFor(`${channel.name} told of all 40`, () => new Set(told()).size === 40 || null);
      await stillAfter(`${channel.name} told of nothing twice`, () => told().length === 40, 500);
      assert.deepEqual(told(), raised);
    }
    await waitFor("the failing channels' errors", async () => {
      const items = (await admin.get("/v1/channels")).body.items as { name: string; state: { failures: number } }[];
      return items.filter((c) => c.name.endsWith("-down") && c.state.failures >= 2).length === 2 || null;
    });
    const logs = services.map((s) => s.output()).join("");
    assert.match(logs, /notification failed/);
    assert.ok(!logs.includes("zzSLACKTOKENzz"), "the Slack token is in the logs");
    assert.ok(!logs.includes("zzSMTPPASSzz"), "the SMTP password is in the logs");
  });
});
