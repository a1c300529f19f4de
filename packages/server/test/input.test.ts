import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, spawnService, startTestService, type RunningService } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { api } from "./support/api.ts";
import { waitFor } from "@tidings/testkit/wait";
import { Combiner } from "../src/publish/combiner.ts";
import { bracketsAtMost, mayHoldInexactNumber, mayHoldPoison, nestingAtMost, scanJson } from "../src/domain/jsonScan.ts";
import { badText, deliverAtProblem, inspectValue } from "../src/domain/messageInput.ts";
import { parseExact, RawJson, stringifyExact } from "../src/domain/rawJson.ts";
import type { TidingsError } from "../src/domain/errors.ts";

interface Raw {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

/** A POST of raw JSON text, as a producer's bytes reach the service. */
async function postRaw(url: string, path: string, text: string, headers: Record<string, string> = {}): Promise<Raw> {
  const response = await fetch(url + path, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json", ...headers },
    body: text,
  });
  const body = await response.text();
  return { status: response.status, headers: response.headers, text: body, body: body ? JSON.parse(body) : null };
}

const deep = (n: number) => `${"[".repeat(n)}1${"]".repeat(n)}`;

/** Request bodies PostgreSQL or the JSON layer would refuse, each with the field its 400 must name. */
const POISON: Array<{ name: string; body: string; field: RegExp }> = [
  { name: "NUL in a payload string", body: '{"topic":"mix","payload":{"a":[0,1,2,{"b":"x\\u0000y"}]}}', field: /^payload\.a\[3\]\.b$/ },
  { name: "lone high surrogate in a payload", body: '{"topic":"mix","payload":{"s":"\\ud800"}}', field: /^payload\.s$/ },
  { name: "lone low surrogate in a payload key", body: '{"topic":"mix","payload":{"k\\udc00":1}}', field: /^payload\[/ },
  { name: "NUL in the key", body: '{"topic":"mix","key":"k\\u0000","payload":{}}', field: /^key$/ },
  { name: "lone surrogate in a header", body: '{"topic":"mix","headers":{"h":"\\udbff"},"payload":{}}', field: /^headers\.h$/ },
  { name: "payload nested 20,000 deep", body: `{"topic":"mix","payload":${deep(20_000)}}`, field: /^payload(\[0\])+$/ },
  { name: "payload nested 65 deep", body: `{"topic":"mix","payload":${deep(65)}}`, field: /^payload(\[0\])+$/ },
  { name: "checkAfter of 999999999 days", body: '{"topic":"mix","payload":{},"prepare":true,"checkAfter":"999999999d"}', field: /^checkAfter$/ },
  { name: "checkAfter of 999999999999 days", body: '{"topic":"mix","payload":{},"prepare":true,"checkAfter":"999999999999d"}', field: /^checkAfter$/ },
  { name: "delay of 999999999 days", body: '{"topic":"mix","payload":{},"delay":"999999999d"}', field: /^delay$/ },
  { name: "deliverAt in year 0001 with an offset", body: '{"topic":"mix","payload":{},"deliverAt":"0001-01-01T00:00:00+01:00"}', field: /^deliverAt$/ },
  { name: "deliverAt in year 275760", body: '{"topic":"mix","payload":{},"deliverAt":"+275760-09-13T00:00:00Z"}', field: /^deliverAt$/ },
  { name: "deliverAt at the end of year 9999", body: '{"topic":"mix","payload":{},"deliverAt":"9999-12-31T23:59:59-23:59"}', field: /^deliverAt$/ },
  { name: "deliverAt on a leap second", body: '{"topic":"mix","payload":{},"deliverAt":"2026-12-31T23:59:60Z"}', field: /^deliverAt$/ },
];

/** The payload's text inside a delivered envelope `{"id",…,"payload":…,"headers":…}`. */
function payloadText(envelope: string): string {
  const start = envelope.indexOf(',"payload":') + ',"payload":'.length;
  return envelope.slice(start, envelope.lastIndexOf(',"headers":'));
}

describe("hostile input on the publish path", () => {
  let database: TestDatabase;
  let service: RunningService;
  let receiver: Receiver;
  let db: pg.Pool;

  before(async () => {
    database = await createTestDatabase("input");
    service = await startTestService(database.url);
    receiver = await new Receiver().start();
    db = new pg.Pool({ connectionString: database.url, max: 2 });
    const sub = await api(service.url, ADMIN_KEY).post("/v1/subscriptions", {
      name: "exact",
      topic: "exact",
      endpoint: { type: "http", url: `${receiver.url}/hooks` },
    });
    assert.equal(sub.status, 201);
  });

  after(async () => {
    await service.close();
    await receiver.stop();
    await db.end();
    await database.drop();
  });

  test("poison requests mixed into hundreds of concurrent good ones: each poison one a 400 naming its field, every good one stored", async () => {
    const good = Array.from({ length: 600 }, (_, i) => JSON.stringify({ id: `good-${i}`, topic: "mix", key: `k${i}`, payload: { i, text: "é ✓ 😀" } }));
    const requests: Array<{ body: string; poison?: (typeof POISON)[number] }> = good.map((body) => ({ body }));
    // Each poison request twice, spread among the good ones so that they share statements.
    for (const [i, poison] of POISON.concat(POISON).entries()) requests.splice(20 + i * 20, 0, { body: poison.body, poison });
    const started = Date.now();
    const answers = await Promise.all(requests.map((r) => postRaw(service.url, "/v1/messages", r.body)));
    const ms = Date.now() - started;
    answers.forEach((answer, i) => {
      const poison = requests[i]!.poison;
      if (poison) {
        assert.equal(answer.status, 400, `${poison.name}: ${answer.text.slice(0, 300)}`);
        assert.equal(answer.body.error.code, "invalid_request", poison.name);
        assert.match(answer.body.error.field, poison.field, `${poison.name}: ${answer.body.error.field}`);
        assert.equal(typeof answer.body.error.message, "string");
      } else {
        assert.equal(answer.status, 201, answer.text.slice(0, 300));
      }
    });
    const { rows } = await db.query("select count(*)::int as n from messages where topic = 'mix'");
    assert.equal(rows[0].n, 600, "every good message stored, no poison one");
    console.log(`# ${requests.length} concurrent publishes (${POISON.length * 2} poison) answered in ${ms} ms`);
  });

  test("a batch with poison members: atomic answers 400 naming the member; atomic:false stores the others and marks those invalid", async () => {
    const members = [
      '{"topic":"batch","payload":{"n":0}}',
      '{"topic":"batch","payload":{"x":"\\u0000"}}',
      '{"topic":"batch","payload":{"n":2},"key":"two"}',
      `{"topic":"batch","payload":{"d":${deep(20_000)}}}`,
      '{"topic":"batch","payload":{"n":4},"prepare":true,"checkAfter":"999999999d"}',
      '{"topic":"batch","payload":{"n":5}}',
    ];
    const atomic = await postRaw(service.url, "/v1/messages/batch", `{"messages":[${members.join(",")}]}`);
    assert.equal(atomic.status, 400, atomic.text.slice(0, 300));
    assert.equal(atomic.body.error.field, "messages[1].payload.x");
    assert.equal((await db.query("select count(*)::int as n from messages where topic = 'batch'")).rows[0].n, 0, "all or nothing");

    const loose = await postRaw(service.url, "/v1/messages/batch", `{"atomic":false,"messages":[${members.join(",")}]}`);
    assert.equal(loose.status, 201, loose.text.slice(0, 300));
    assert.deepEqual(loose.body.outcomes, ["created", "invalid", "created", "invalid", "invalid", "created"]);
    assert.deepEqual(
      loose.body.errors.map((e: { index: number; field: string }) => [e.index, e.field.replace(/(\[0\])+$/, "[0]…")]),
      [
        [1, "messages[1].payload.x"],
        [3, "messages[3].payload.d[0]…"],
        [4, "messages[4].checkAfter"],
      ],
    );
    assert.equal(loose.body.items[1], null);
    assert.equal(loose.body.items[2].key, "two");
    assert.equal((await db.query("select count(*)::int as n from messages where topic = 'batch'")).rows[0].n, 3);

    const minimal = await postRaw(service.url, "/v1/messages/batch", `{"atomic":false,"messages":[${members.join(",")}]}`, { prefer: "return=minimal" });
    assert.equal(minimal.status, 201);
    assert.deepEqual(minimal.body.outcomes, ["created", "invalid", "created", "invalid", "invalid", "created"]);
    assert.equal(minimal.body.ids[1], null);
  });

  test("big and exponent numbers reach the receiver, the answers and the list byte for byte as sent", async () => {
    const payloads = [
      '{"big":12345678901234567891,"neg":-98765432109876543210}',
      '{"huge":1e400,"tiny":1E-400,"pi":3.14159265358979323846264338327950288,"fine":1.5,"list":[1,2e3, 4.0000000000000000001]}',
      "[9007199254740993, 9007199254740993.5]",
      "123456789012345678901234567890",
    ];
    const sent: string[] = [];
    for (const [i, payload] of payloads.entries()) {
      // Single, with and without an id.
      const single = await postRaw(service.url, "/v1/messages", `{"topic":"exact","payload":${payload},"key":"s${i}"}`);
      assert.equal(single.status, 201, single.text);
      assert.equal(payloadText(single.text.replace(/,"headers":.*$/, ',"headers":')), payload, "the answer shows the payload as sent");
      const withId = await postRaw(service.url, "/v1/messages", `{"id":"exact-${i}","topic":"exact","payload":${payload}}`);
      assert.equal(withId.status, 201);
      const again = await postRaw(service.url, "/v1/messages", `{"id":"exact-${i}","topic":"exact","payload":${payload}}`);
      assert.equal(again.status, 200, "the same content again is a repeat");
      assert.equal(payloadText(again.text.replace(/,"headers":.*$/, ',"headers":')), payload, "the repeat's answer shows the stored payload as sent");
      sent.push(payload, payload);
    }
    const batch = await postRaw(
      service.url,
      "/v1/messages/batch",
      `{"messages":[${payloads.map((p, i) => `{"topic":"exact","key":"b${i}","payload":${p}}`).join(",")}]}`,
    );
    assert.equal(batch.status, 201, batch.text);
    sent.push(...payloads);
    await waitFor("every exact message delivered", () => receiver.deliveredIds().size >= sent.length);
    const delivered = receiver.received.filter((r) => r.status === 200).map((r) => payloadText(r.body));
    for (const payload of payloads) {
      assert.equal(delivered.filter((d) => d === payload).length, 3, `delivered three times byte for byte: ${payload}`);
    }
    const one = await fetch(`${service.url}/v1/messages/exact-0`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.ok((await one.text()).includes(`"payload":${payloads[0]}`), "GET shows the exact payload");
    const list = await fetch(`${service.url}/v1/messages?topic=exact&limit=100`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    const listText = await list.text();
    for (const payload of payloads) assert.ok(listText.includes(`"payload":${payload}`), `the list shows ${payload}`);
  });

  test("a prepared message with big numbers, committed, reaches the receiver byte for byte as sent", async () => {
    const payload = '{"amount":98765432109876543210.123456789,"rate":6.02214076e23}';
    const prepared = await postRaw(service.url, "/v1/messages", `{"id":"exact-prepared","topic":"exact","prepare":true,"payload":${payload}}`);
    assert.equal(prepared.status, 201, prepared.text);
    const committed = await postRaw(service.url, "/v1/messages/exact-prepared/commit", "{}");
    assert.equal(committed.status, 200, committed.text);
    assert.equal(payloadText(committed.text.replace(/,"headers":.*$/, ',"headers":')), payload, "the commit's answer shows the payload as sent");
    const delivery = await waitFor("the committed message delivered", () => receiver.received.find((r) => r.id === "exact-prepared" && r.status === 200));
    assert.equal(payloadText(delivery.body), payload);
  });

  test("header values of 16 digits or more stay strings; a payload whose long digits are only in strings parses as usual", async () => {
    const sent = await postRaw(
      service.url,
      "/v1/messages",
      '{"id":"long-digits","topic":"ok","headers":{"x-request-id":"12345678901234567890"},"payload":{"n":1}}',
    );
    assert.equal(sent.status, 201, sent.text);
    const read = await fetch(`${service.url}/v1/messages/long-digits`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    const body = (await read.json()) as { headers: Record<string, string>; payload: unknown };
    assert.deepEqual(body.headers, { "x-request-id": "12345678901234567890" });
    assert.deepEqual(body.payload, { n: 1 });
    const strings = await postRaw(service.url, "/v1/messages", '{"id":"long-digits-2","topic":"ok","payload":{"order":"98765432109876543210"}}');
    assert.equal(strings.status, 201, strings.text);
    const again = await fetch(`${service.url}/v1/messages/long-digits-2`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.deepEqual(((await again.json()) as { payload: unknown }).payload, { order: "98765432109876543210" });
  });

  test("the checks run on the raw text only when it looks suspect: an escaped backslash before u is fine", async () => {
    const answer = await postRaw(service.url, "/v1/messages", '{"topic":"ok","key":"\\\\u0000","payload":{"path":"C:\\\\ud800","emoji":"\\ud83d\\ude00"}}');
    assert.equal(answer.status, 201, answer.text);
    assert.equal(answer.body.key, "\\u0000");
    assert.equal(answer.body.payload.emoji, "😀");
  });
});

describe("bounded memory and waits", () => {
  test("listing 200 messages of 1 MB with limit=1000 on a 128 MB heap: pages end early with a cursor, the process lives", async () => {
    const database = await createTestDatabase("input_list");
    const service = await spawnService({ DATABASE_URL: database.url });
    const db = new pg.Pool({ connectionString: database.url, max: 1 });
    try {
      await db.query(`insert into messages (id, topic, payload, state, committed_at)
        select 'big-' || g, 'big', json_build_object('n', g, 's', repeat(md5(g::text), 31250))::json, 'committed', now()
          from generate_series(1, 200) g`);
      const admin = api(service.url, ADMIN_KEY);
      const seen = new Set<string>();
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page = await admin.get(`/v1/messages?topic=big&limit=1000${cursor ? `&cursor=${cursor}` : ""}`);
        assert.equal(page.status, 200);
        pages++;
        assert.ok(page.body.items.length >= 1 && page.body.items.length <= 4, `a page of ${page.body.items.length} messages of 1 MB`);
        for (const m of page.body.items) {
          assert.equal(m.payload.s.length, 1_000_000);
          seen.add(m.id);
        }
        cursor = page.body.nextCursor;
      } while (cursor !== null);
      assert.equal(seen.size, 200, "every message listed once across the pages");
      // Several lists at once, too.
      const concurrent = await Promise.all(Array.from({ length: 4 }, () => admin.get("/v1/messages?topic=big&limit=1000")));
      for (const page of concurrent) assert.equal(page.status, 200);
      assert.equal((await fetch(`${service.url}/healthz`)).status, 200);
      assert.equal(service.child.exitCode, null, "the service is still running");
      console.log(`# 200 messages of 1 MB listed in ${pages} pages`);
    } finally {
      await service.kill();
      await db.end();
      await database.drop();
    }
  });

  test("a locked table: a full publish queue and the pool's wait answer 503 with Retry-After, then the service recovers", async () => {
    const database = await createTestDatabase("input_slow");
    const service = await startTestService(database.url, {
      TIDINGS_DB_POOL: "3",
      TIDINGS_DB_CONNECT_TIMEOUT: "300ms",
      TIDINGS_DB_STATEMENT_TIMEOUT: "3s",
      TIDINGS_PUBLISH_QUEUE: "20",
    });
    const locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    try {
      await locker.query("begin");
      await locker.query("lock table messages in access exclusive mode");
      // 60 publishes: one statement blocks on the lock, 20 wait for it, the rest find the queue full.
      const publishes = Array.from({ length: 60 }, (_, i) => postRaw(service.url, "/v1/messages", JSON.stringify({ topic: "slow", payload: { i } })));
      await waitFor("the combined insert to wait on the lock", async () => {
        const { rows } = await locker.query("select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'");
        return rows[0].n >= 1;
      });
      // Reads block on the lock too: the pool runs dry and a read waits longer than 300 ms for a connection.
      const reads = await Promise.all(
        Array.from({ length: 6 }, () => postRaw(service.url, "/v1/messages/batch", JSON.stringify({ messages: [{ topic: "slow", payload: {} }] }))),
      );
      const answers = await Promise.all(publishes);
      await locker.query("rollback");
      const statuses = [...answers, ...reads].map((a) => a.status);
      assert.ok(!statuses.some((s) => s >= 500 && s !== 503), `only 503 among server errors: ${statuses.join(",")}`);
      const refused = [...answers, ...reads].filter((a) => a.status === 503);
      assert.ok(answers.filter((a) => a.status === 503).length >= 30, "the full queue refused the publishes beyond it");
      assert.ok(
        reads.some((a) => a.status === 503),
        "a request that found no connection in time was refused",
      );
      for (const a of refused) {
        assert.equal(a.headers.get("retry-after"), "1");
        assert.equal(a.body.error.code, "unavailable");
      }
      const after = await postRaw(service.url, "/v1/messages", JSON.stringify({ topic: "slow", payload: { after: true } }));
      assert.equal(after.status, 201, "the service recovered");
      console.log(`# answers while locked: ${[...new Set(statuses)].map((s) => `${s}×${statuses.filter((x) => x === s).length}`).join(" ")}`);
    } finally {
      await locker.end();
      await service.close();
      await database.drop();
    }
  });
});

describe("the checks' pure logic", () => {
  test("the quick looks at the raw text: poison escapes, inexact numbers, bracket bound", () => {
    assert.equal(mayHoldPoison('{"a":"\\u0000"}'), true);
    assert.equal(mayHoldPoison('{"a":"\\ud800x"}'), true);
    assert.equal(mayHoldPoison('{"a":"\\udc00"}'), true);
    assert.equal(mayHoldPoison('{"a":"\\ud83d\\ude00 \\u00e9"}'), false, "a surrogate pair and other escapes are fine");
    assert.equal(mayHoldPoison('{"a":"plain"}'), false);
    assert.equal(mayHoldInexactNumber('{"a":12345678901234567}'), true);
    assert.equal(mayHoldInexactNumber('{"a":[1e400]}'), true);
    assert.equal(mayHoldInexactNumber('{"a": -1.5E-3}'), true);
    assert.equal(mayHoldInexactNumber('{"a":123456789012345,"b":1.25,"id":"0193a4e5-7c3e"}'), false, "15 digits and hex text are fine");
    assert.equal(bracketsAtMost("[[{}]]", 3), true);
    assert.equal(bracketsAtMost("[[{[]}]]", 3), false);
  });

  test("scanJson finds the depth and each payload's exact text, strings and escapes skipped", () => {
    const single = scanJson('{"topic":"t","payload": {"a":[1e400, "]}\\"\\\\"],"b":{}} ,"key":"k"}', false);
    assert.equal(single.maxDepth, 3);
    assert.equal(single.inexactNumber, true);
    assert.equal(scanJson('{"payload":{"t":true,"f":false,"n":null,"x":"1e400","id":"4e5f"}}', false).inexactNumber, false, "only number tokens count");
    assert.equal(single.payloads.get(0), '{"a":[1e400, "]}\\"\\\\"],"b":{}}');
    const batch = scanJson('{"atomic":false,"messages":[{"payload":12345678901234567891},{"topic":"x","payload":"s"},{"payload":[[[0]]]}]}', true);
    assert.deepEqual(
      [...batch.payloads],
      [
        [0, "12345678901234567891"],
        [1, '"s"'],
        [2, "[[[0]]]"],
      ],
    );
    assert.equal(batch.maxDepth, 6);
    assert.equal(scanJson(`{"payload":${"[".repeat(50_000)}${"]".repeat(50_000)}}`, false).maxDepth, 50_001, "any depth, without recursion");
    assert.equal(scanJson('\ufeff{"payload":[[1e400]]}', false).payloads.get(0), "[[1e400]]", "after a byte order mark too");
  });

  test("inspectValue names the first bad string, key or nesting with its path", () => {
    assert.deepEqual(inspectValue({ a: [0, 1, 2, { b: "x\u0000" }] }, "payload")?.field, "payload.a[3].b");
    assert.deepEqual(inspectValue({ "odd key": "\ud800" }, "payload")?.field, 'payload["odd key"]');
    assert.match(inspectValue({ "k\udc00": 1 }, "payload")?.message ?? "", /the key of payload\[/);
    let deep: unknown = 1;
    for (let i = 0; i < 65; i++) deep = [deep];
    assert.match(inspectValue(deep, "payload")?.message ?? "", /more than 64 deep/);
    assert.equal(inspectValue((deep as unknown[])[0], "payload"), null, "64 deep is fine");
    assert.equal(badText("😀 é"), null);
    assert.equal(deliverAtProblem(Date.parse("1969-12-31T23:59:59Z"), Date.now()), "is before 1970-01-01T00:00:00Z");
    assert.equal(deliverAtProblem(Number.NaN, Date.now()), "is not a valid date-time");
    assert.equal(deliverAtProblem(Date.now() + 1000, Date.now()), null);
  });

  test("RawJson: stringifyExact writes the text as sent, JSON.stringify the parsed value; a string that looks like the mark stays a string", () => {
    const value = { a: new RawJson("[12345678901234567891, 1e400]"), b: "\u0001raw-guess:0", c: [new RawJson("1E-400")] };
    assert.equal(stringifyExact(value), '{"a":[12345678901234567891, 1e400],"b":"\\u0001raw-guess:0","c":[1E-400]}');
    assert.equal(JSON.stringify({ a: new RawJson("[1.5]") }), '{"a":[1.5]}');
    assert.ok(parseExact('{"n":12345678901234567891}') instanceof RawJson);
    assert.deepEqual(parseExact('{"n":12}'), { n: 12 });
  });

  test("the Combiner: a batch the store refuses is split until only the culprit fails; a full queue is refused with 503", async () => {
    const writes: number[][] = [];
    const combiner = new Combiner<number, number>(
      async (items) => {
        writes.push(items);
        await new Promise((resolve) => setImmediate(resolve));
        if (items.includes(13)) throw new RangeError("13 cannot be written");
        return items.map((i) => i * 2);
      },
      1000,
      1,
      { maxWaiting: 100, maxWaitingBytes: 1_000, isItemError: (e) => e instanceof RangeError },
    );
    const first = combiner.push(0);
    const rest = Array.from({ length: 20 }, (_, i) =>
      combiner.push(i + 1).then(
        (v) => ({ v }),
        (e: unknown) => ({ e }),
      ),
    );
    assert.equal(await first, 0);
    const outcomes = await Promise.all(rest);
    for (const [i, o] of outcomes.entries()) {
      if (i + 1 === 13) assert.ok("e" in o && o.e instanceof RangeError);
      else assert.deepEqual(o, { v: (i + 1) * 2 });
    }
    assert.ok(writes.length <= 2 + 2 * Math.ceil(Math.log2(20)), `${writes.length} writes to isolate one culprit among 20`);

    const held = combiner.push(1);
    const full = await Promise.allSettled([combiner.push(2, 600), combiner.push(3, 600)]);
    assert.equal(full[0].status, "fulfilled");
    assert.equal(full[1].status, "rejected");
    const error = (full[1] as PromiseRejectedResult).reason as TidingsError;
    assert.equal(error.code, "unavailable");
    assert.equal(error.details?.retryAfterSeconds, 1);
    await held;
  });
});

test("nestingAtMost follows the nesting only, strings and escaped quotes skipped", () => {
  assert.equal(nestingAtMost('{"a":[[1]]}', 3), true);
  assert.equal(nestingAtMost('{"a":[[1]]}', 2), false);
  assert.equal(
    nestingAtMost('{"a":"[[[[\\"[[[","b":"\\\\"}', 1),
    true,
    "brackets inside strings, an escaped quote, an escaped backslash before the closing quote",
  );
  const deep = `{"messages":[{"payload":${"[".repeat(70)}${"]".repeat(70)}}]}`;
  assert.equal(nestingAtMost(deep, 67), false);
  assert.equal(nestingAtMost(deep, 73), true);
});
