import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";

/**
 * Random request bodies, good and bad mixed, sent at once to the real service: never a 5xx,
 * every good message accepted, every bad one a 4xx in the error shape.
 */

/** A piece of JSON text and what the service must make of it. */
interface Piece {
  text: string;
  /** Content the service must refuse on its own (NUL, lone surrogate, too deep, out of range): per message in a batch. */
  badContent: boolean;
  /** Against the schema (wrong type, unknown field, bad format): refuses a whole batch. */
  badSchema: boolean;
  /** Nesting of objects and arrays. */
  depth: number;
}

const piece = (text: string, depth = 0): Piece => ({ text, badContent: false, badSchema: false, depth });
const poison = (text: string): Piece => ({ text, badContent: true, badSchema: false, depth: 0 });
const nested = (n: number): Piece => piece(`${"[".repeat(n)}0${"]".repeat(n)}`, n);

const often = <T>(arbitrary: fc.Arbitrary<T>) => ({ weight: 6, arbitrary });
const rarely = <T>(arbitrary: fc.Arbitrary<T>) => ({ weight: 1, arbitrary });

const leaf: fc.Arbitrary<Piece> = fc.oneof(
  often(fc.integer().map((n) => piece(String(n)))),
  often(fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => piece(JSON.stringify(d)))),
  often(fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map((b) => piece(String(b)))),
  often(
    fc
      .tuple(fc.integer({ min: -99, max: 99 }), fc.constantFrom("e", "E", "e+", "e-"), fc.integer({ min: 0, max: 999 }))
      .map(([m, e, x]) => piece(`${m}${e}${x}`)),
  ),
  often(fc.constantFrom("true", "false", "null").map((t) => piece(t))),
  often(fc.string({ maxLength: 30 }).map((s) => piece(JSON.stringify(s)))),
  often(fc.string({ unit: "grapheme", maxLength: 12 }).map((s) => piece(JSON.stringify(s)))),
  rarely(fc.string({ minLength: 1000, maxLength: 20_000 }).map((s) => piece(JSON.stringify(s)))),
  rarely(fc.constantFrom('"\\\\u0000 is fine escaped"', '"\\ud83d\\ude00"', '"\\u00e9\\u2713"').map((t) => piece(t))),
  rarely(fc.constantFrom('"a\\u0000b"', '"\\ud800"', '"x\\udfffy"', '"\\udbff\\udbff"', '"\\u0000"').map(poison)),
  rarely(fc.constantFrom(1, 10, 40, 63, 64, 65, 300, 20_000).map(nested)),
);

const { node } = fc.letrec<{ node: Piece; array: Piece; object: Piece }>((tie) => ({
  node: fc.oneof({ depthSize: "small" }, leaf, tie("array"), tie("object")),
  array: fc.array(tie("node"), { maxLength: 5 }).map((items) => ({
    text: `[${items.map((i) => i.text).join(",")}]`,
    badContent: items.some((i) => i.badContent),
    badSchema: false,
    depth: 1 + Math.max(0, ...items.map((i) => i.depth)),
  })),
  object: fc
    .array(
      fc.tuple(
        fc.oneof(
          often(fc.string({ maxLength: 8 }).map((k) => ({ k, bad: false }))),
          rarely(fc.constantFrom("\\u0000", "\\udc00").map((k) => ({ k, bad: true }))),
        ),
        tie("node"),
      ),
      { maxLength: 5 },
    )
    .map((entries) => ({
      // Keys made unique: a repeated key would hide the value before it.
      text: `{${entries.map(([key, value], i) => `${JSON.stringify(`k${i}_`).slice(0, -1)}${key.bad ? key.k : JSON.stringify(key.k).slice(1, -1)}":${value.text}`).join(",")}}`,
      badContent: entries.some(([key, value]) => key.bad || value.badContent),
      badSchema: false,
      depth: 1 + Math.max(0, ...entries.map(([, value]) => value.depth)),
    })),
}));

const payload = node.map((p) => ({ ...p, badContent: p.badContent || p.depth > 64 }));

/** An optional field: absent half the time, else mostly a good piece, sometimes a bad one. */
const optional = (name: string, good: fc.Arbitrary<Piece>, ...bad: Array<fc.Arbitrary<Piece>>) =>
  fc.option(
    fc.oneof({ weight: 3 * bad.length, arbitrary: good }, ...bad.map(rarely)).map((p) => ({ ...p, text: `,"${name}":${p.text}` })),
    { nil: undefined, freq: 2 },
  );

const inAYear = (ms: number) => new Date(Date.now() + ms).toISOString();

const message = fc
  .record({
    topic: fc.oneof(
      { weight: 30, arbitrary: fc.constant(piece('"fuzz.t"')) },
      rarely(fc.constantFrom("5", '""', '"bad topic"', "null").map((t) => ({ ...piece(t), badSchema: true }))),
    ),
    payload: fc.option(payload, { nil: undefined, freq: 50 }),
    key: optional(
      "key",
      fc.string({ minLength: 1, maxLength: 50 }).map((k) => piece(JSON.stringify(k))),
      fc.constantFrom('"k\\u0000"', '"\\ud800k"').map(poison),
      fc.constantFrom(`"${"k".repeat(201)}"`, "7").map((t) => ({ ...piece(t), badSchema: true })),
    ),
    headers: optional(
      "headers",
      fc.string({ maxLength: 20 }).map((v) => piece(`{"h":${JSON.stringify(v)}}`)),
      fc.constantFrom('{"h":"\\ud800"}', '{"\\u0000":"v"}').map(poison),
      fc.constantFrom('{"h":5}', "[]").map((t) => ({ ...piece(t), badSchema: true })),
    ),
    time: fc.option(
      fc.oneof(
        often(fc.constantFrom("0ms", "500ms", "30s", "5m", "2h", "366d").map((d) => piece(`,"delay":"${d}"`))),
        often(fc.integer({ min: -40 * 365, max: 364 }).map((days) => piece(`,"deliverAt":"${inAYear(days * 86_400_000)}"`))),
        rarely(fc.constantFrom("367d", "999999999d", "999999999999d", "1.5s", "-1s", "", "5 m").map((d) => poison(`,"delay":"${d}"`))),
        rarely(
          fc
            .constantFrom("0001-01-01T00:00:00+01:00", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59-23:59", "2026-12-31T23:59:60Z")
            .map((d) => poison(`,"deliverAt":"${d}"`)),
        ),
        rarely(fc.constantFrom("+275760-09-13T00:00:00Z", "yesterday").map((d) => ({ ...piece(`,"deliverAt":"${d}"`), badSchema: true }))),
        rarely(fc.constant({ ...piece(',"delay":5'), badSchema: true })),
        rarely(fc.constant(poison(',"delay":"1s","deliverAt":"2030-01-01T00:00:00Z"'))),
      ),
      { nil: undefined, freq: 2 },
    ),
    prepare: fc.option(
      fc.oneof(
        often(fc.constant(piece(`,"prepare":true`))),
        often(fc.constant(piece(`,"prepare":true,"checkAfter":"1m"`))),
        rarely(fc.constantFrom(`,"prepare":true,"checkAfter":"999999999d"`, `,"checkAfter":"1m"`).map(poison)),
        rarely(fc.constant({ ...piece(`,"prepare":"yes"`), badSchema: true })),
        rarely(fc.constant({ ...piece(`,"extra":1`), badSchema: true })),
      ),
      { nil: undefined, freq: 4 },
    ),
  })
  .map((m) => {
    const parts = [m.topic, m.payload, m.key, m.headers, m.time, m.prepare].filter((p): p is Piece => p !== undefined);
    const text = `{"topic":${m.topic.text}${m.payload ? `,"payload":${m.payload.text}` : ""}${[m.key, m.headers, m.time, m.prepare].map((p) => p?.text ?? "").join("")}}`;
    return { text, badSchema: m.payload === undefined || parts.some((p) => p.badSchema), badContent: parts.some((p) => p.badContent) };
  });

let database: TestDatabase;
let service: RunningService;

before(async () => {
  database = await createTestDatabase("fuzz");
  service = await startTestService(database.url);
});

after(async () => {
  await service.close();
  await database.drop();
});

async function post(path: string, text: string): Promise<{ status: number; body: any; text: string }> {
  const response = await fetch(service.url + path, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
    body: text,
  });
  const body = await response.text();
  let parsed: any = null;
  try {
    parsed = JSON.parse(body);
  } catch {
    // asserted below
  }
  return { status: response.status, body: parsed, text: body };
}

function assertRefusal(answer: { status: number; body: any; text: string }, what: string): void {
  assert.ok(answer.status >= 400 && answer.status < 500, `${what}: ${answer.status} ${answer.text.slice(0, 300)}`);
  assert.equal(typeof answer.body?.error?.code, "string", `${what}: ${answer.text.slice(0, 300)}`);
  assert.equal(typeof answer.body.error.message, "string");
  if (answer.body.error.code === "invalid_request")
    assert.equal(typeof answer.body.error.field, "string", `${what} names the field: ${answer.text.slice(0, 300)}`);
}

test("random good and bad messages, single and batched, sent at once: no 5xx, good accepted, bad refused with a 4xx naming the field", async () => {
  let runs = 0;
  let singles = 0;
  const kinds = { good: 0, badContent: 0, badSchema: 0 };
  const started = Date.now();
  await fc.assert(
    fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 8 }), async (messages) => {
      runs++;
      singles += messages.length;
      for (const m of messages) kinds[m.badSchema ? "badSchema" : m.badContent ? "badContent" : "good"]++;
      const batch = `[${messages.map((m) => m.text).join(",")}]`;
      const [answers, atomic, loose] = await Promise.all([
        Promise.all(messages.map((m) => post("/v1/messages", m.text))),
        post("/v1/messages/batch", `{"messages":${batch}}`),
        post("/v1/messages/batch", `{"atomic":false,"messages":${batch}}`),
      ]);
      answers.forEach((answer, i) => {
        const m = messages[i]!;
        if (m.badSchema || m.badContent) assertRefusal(answer, `bad message ${m.text.slice(0, 200)}`);
        else assert.equal(answer.status, 201, `good message ${m.text.slice(0, 200)}: ${answer.text.slice(0, 300)}`);
      });
      const anySchema = messages.some((m) => m.badSchema);
      if (anySchema || messages.some((m) => m.badContent)) assertRefusal(atomic, "atomic batch with a bad message");
      else assert.equal(atomic.status, 201, atomic.text.slice(0, 300));
      if (anySchema) {
        assertRefusal(loose, "batch with a message against the schema");
      } else {
        assert.equal(loose.status, 201, loose.text.slice(0, 300));
        assert.deepEqual(
          loose.body.outcomes,
          messages.map((m) => (m.badContent ? "invalid" : "created")),
          `outcomes of ${batch.slice(0, 300)}: ${JSON.stringify(loose.body.errors)}`,
        );
      }
    }),
    { numRuns: Number(process.env.TIDINGS_FUZZ_RUNS ?? 500), interruptAfterTimeLimit: 50_000 },
  );
  console.log(`# ${runs} runs, ${singles} single publishes (${JSON.stringify(kinds)}) and ${runs * 2} batches in ${Date.now() - started} ms`);
  assert.ok(kinds.good > 0 && kinds.badContent > 0 && kinds.badSchema > 0, "every kind was tried");
});
