import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelayMs } from "../src/domain/backoff.ts";
import { compileRetryPlan, nextTry } from "../src/domain/retrySchedule.ts";
import { parseEnvelope } from "../src/domain/envelope.ts";
import { resolveMessage } from "../src/domain/message.ts";
import { dollarToQuestion, questionToDollar, splitPlaceholders } from "../src/executor/placeholders.ts";
import { isUniqueViolation } from "../src/executor/dialect.ts";
import { splitStatements } from "../src/schema/migrate.ts";
import { TidingsError } from "../src/index.ts";

test("backoff doubles from the base up to the cap, with ±20% jitter", () => {
  const policy = { baseMs: 1000, maxMs: 8000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 9].map((n) => backoffDelayMs(n, policy, () => 0.5)),
    [1000, 2000, 4000, 8000, 8000, 8000],
  );
  assert.equal(
    backoffDelayMs(1, policy, () => 0),
    800,
  );
  assert.equal(
    backoffDelayMs(1, policy, () => 0.9999999),
    1200,
  );
  assert.equal(
    backoffDelayMs(1000, policy, () => 0.5),
    8000,
    "no overflow for huge counts",
  );
});

test("placeholders convert both ways, leaving quoted text alone", () => {
  assert.equal(questionToDollar("select ?, '?', \"a?\", ?"), "select $1, '?', \"a?\", $2");
  assert.deepEqual(dollarToQuestion("select $2, $1, '$1', $2, data ? 'k'", ["a", "b"]), { sql: "select ?, ?, '$1', ?, data \\? 'k'", params: ["b", "a", "b"] });
  assert.throws(() => dollarToQuestion("select $3", ["a"]), RangeError);
  assert.deepEqual(splitPlaceholders("a = $1 and b = $2", [1, 2], "dollar"), { chunks: ["a = ", " and b = ", ""], values: [1, 2] });
  assert.deepEqual(splitPlaceholders("a = ? and b = '?'", [1], "question"), { chunks: ["a = ", " and b = '?'"], values: [1] });
});

test("a message is validated at the edge, naming the field, and gets a time-ordered id", () => {
  const m = resolveMessage({ topic: "order.paid", key: "o-1", payload: { a: 1 }, delayMs: 1000 }, 1_700_000_000_000);
  assert.match(m.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(m.payloadJson, '{"a":1}');
  assert.equal(m.headersJson, "{}");
  assert.equal(m.deliverAt?.getTime(), 1_700_000_001_000);
  const bad = (message: Parameters<typeof resolveMessage>[0], field: string) => {
    assert.throws(
      () => resolveMessage(message, Date.now(), "[2]."),
      (e: unknown) => e instanceof TidingsError && e.code === "invalid_message" && e.field === field,
    );
  };
  bad({ topic: "has space", payload: 1 }, "[2].topic");
  bad({ topic: "t", tag: "", payload: 1 }, "[2].tag");
  bad({ topic: "t", payload: undefined }, "[2].payload");
  bad({ topic: "t", id: "-starts-with-dash", payload: 1 }, "[2].id");
  bad({ topic: "t", payload: 1, headers: { h: 5 as unknown as string } }, "[2].headers.h");
  bad({ topic: "t", payload: 1, delayMs: -1 }, "[2].delayMs");
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  bad({ topic: "t", payload: cyclic }, "[2].payload");
});

test("an envelope is parsed and checked field by field", () => {
  const e = parseEnvelope('{"id":"m1","topic":"t","tag":null,"key":"k","payload":{"x":1},"headers":{"h":"v"},"createdAt":"2026-01-01T00:00:00Z"}');
  assert.deepEqual(e, { id: "m1", topic: "t", tag: null, key: "k", payload: { x: 1 }, headers: { h: "v" }, createdAt: "2026-01-01T00:00:00Z" });
  for (const [body, field] of [
    ["nope", "body"],
    ["[1]", "body"],
    ['{"topic":"t","payload":1}', "id"],
    ['{"id":"m","payload":1}', "topic"],
    ['{"id":"m","topic":"t"}', "payload"],
  ] as const) {
    assert.throws(
      () => parseEnvelope(body),
      (err: unknown) => err instanceof TidingsError && err.field === field,
      body,
    );
  }
});

test("unique violations are recognised from pg, mysql2 and wrapped ORM errors", () => {
  assert.ok(isUniqueViolation({ code: "23505" }));
  assert.ok(isUniqueViolation({ code: "ER_DUP_ENTRY", errno: 1062 }));
  assert.ok(isUniqueViolation(new Error("drizzle", { cause: { code: "23505" } })));
  assert.ok(!isUniqueViolation(new Error("other")));
});

test("migration files split into statements on ';' at line end, without comments", () => {
  assert.deepEqual(splitStatements("-- a comment; with semicolon\nCREATE TABLE a (x int);\n\nCREATE INDEX i ON a (x) ;\n"), [
    "CREATE TABLE a (x int)",
    "CREATE INDEX i ON a (x)",
  ]);
});

test("a consumer's retry schedule: escalating by default, the last step repeated, then give up", () => {
  const plan = compileRetryPlan();
  assert.deepEqual(
    [1, 2, 8, 9].map((n) => nextTry(plan, n)),
    [{ retryInMs: 60_000 }, { retryInMs: 300_000 }, { retryInMs: 36_000_000 }, "give up"],
  );
  const short = compileRetryPlan({ schedule: ["100ms", "2s"], maxAttempts: 5 });
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((n) => nextTry(short, n)),
    [{ retryInMs: 100 }, { retryInMs: 2000 }, { retryInMs: 2000 }, { retryInMs: 2000 }, "give up"],
  );
  assert.throws(
    () => compileRetryPlan({ schedule: ["1m", "soon"] }),
    (e: unknown) => e instanceof TidingsError && e.field === "retry.schedule[1]",
  );
  assert.throws(
    () => compileRetryPlan({ schedule: [], maxAttempts: 2 }),
    (e: unknown) => e instanceof TidingsError && e.field === "retry.schedule",
  );
  assert.throws(
    () => compileRetryPlan({ maxAttempts: 0 }),
    (e: unknown) => e instanceof TidingsError && e.field === "retry.maxAttempts",
  );
});
