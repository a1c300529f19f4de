import { test } from "node:test";
import assert from "node:assert/strict";
import { TidingsError } from "../src/domain/errors.ts";
import { sameMessage } from "../src/domain/idempotency.ts";
import { messageToStore, type ContentInspection, type PublishContext, type RequestedMessage } from "../src/domain/publishRequest.ts";
import { RawJson } from "../src/domain/rawJson.ts";

const NOW = Date.parse("2026-06-01T12:00:00.000Z");
const DAY = 86_400_000;
const CLEAN: ContentInspection = { walk: false, exactPayloads: null };

/** A context with a fixed clock and numbered ids, so that every outcome is known in advance. */
function context(over: Partial<PublishContext> = {}): PublishContext {
  let n = 0;
  return { app: "shop", checkAfterMs: 10_000, inspection: CLEAN, now: NOW, newId: () => `generated-${++n}`, ...over };
}

const message = (over: Partial<RequestedMessage> = {}): RequestedMessage => ({ topic: "order.paid", payload: { sn: "1001" }, ...over });

/** The 400 a request message gets: its field and text. */
function refusal(body: RequestedMessage, ctx = context(), field = ""): { field: string | undefined; message: string } {
  try {
    messageToStore(body, ctx, field);
  } catch (error) {
    assert.ok(error instanceof TidingsError, String(error));
    assert.equal(error.code, "invalid_request");
    return { field: error.field, message: error.message };
  }
  assert.fail("the message was accepted");
}

test("delay and deliverAt are one or the other", () => {
  assert.deepEqual(refusal(message({ delay: "5m", deliverAt: "2026-06-01T13:00:00Z" })), { field: "delay", message: "give delay or deliverAt, not both" });
  assert.equal(refusal(message({ delay: "5m", deliverAt: "2026-06-01T13:00:00Z" }), context(), "messages[2].").field, "messages[2].delay");
});

test("a delay counts from the request's instant, up to a year and a day", () => {
  assert.equal(messageToStore(message({ delay: "90s" }), context()).deliverAt?.getTime(), NOW + 90_000);
  assert.equal(messageToStore(message({ delay: "366d" }), context()).deliverAt?.getTime(), NOW + 366 * DAY);
  assert.deepEqual(refusal(message({ delay: "367d" })), { field: "delay", message: "the delay is over a year" });
  assert.equal(messageToStore(message(), context()).deliverAt, null, "no delay: delivered now");
});

test("a delay that is not a duration names itself", () => {
  for (const bad of ["5", "1.5s", "soon", "-1s"]) {
    assert.deepEqual(refusal(message({ delay: bad })), { field: "delay", message: `"${bad}" is not a duration (use e.g. 500ms, 30s, 5m, 2h)` }, bad);
  }
});

test("deliverAt is taken from 1970 to a year and a day ahead, and must be a real instant", () => {
  assert.equal(messageToStore(message({ deliverAt: "2026-06-01T13:00:00.250Z" }), context()).deliverAt?.toISOString(), "2026-06-01T13:00:00.250Z");
  assert.equal(messageToStore(message({ deliverAt: "1970-01-01T00:00:00Z" }), context()).deliverAt?.getTime(), 0);
  assert.deepEqual(refusal(message({ deliverAt: "1969-12-31T23:59:59.999Z" })), { field: "deliverAt", message: "deliverAt is before 1970-01-01T00:00:00Z" });
  const latest = new Date(NOW + 366 * DAY).toISOString();
  assert.equal(messageToStore(message({ deliverAt: latest }), context()).deliverAt?.toISOString(), latest);
  const tooLate = new Date(NOW + 366 * DAY + 1).toISOString();
  assert.deepEqual(refusal(message({ deliverAt: tooLate })), { field: "deliverAt", message: "deliverAt is over a year away" });
  assert.deepEqual(refusal(message({ deliverAt: "2026-13-01T00:00:00Z" })), { field: "deliverAt", message: "deliverAt is not a valid date-time" });
});

test("checkAfter applies to prepared messages only, with the service's default", () => {
  assert.deepEqual(refusal(message({ checkAfter: "30s" })), { field: "checkAfter", message: "checkAfter applies to prepared messages only" });
  assert.equal(refusal(message({ checkAfter: "30s", prepare: false }), context(), "messages[0].").field, "messages[0].checkAfter");
  const prepared = messageToStore(message({ prepare: true }), context({ checkAfterMs: 7_000 }));
  assert.equal(prepared.state, "prepared");
  assert.equal(prepared.checkAfterMs, 7_000);
  assert.equal(messageToStore(message({ prepare: true, checkAfter: "2m" }), context()).checkAfterMs, 120_000);
  const committed = messageToStore(message(), context());
  assert.equal(committed.state, "committed");
  assert.equal(committed.checkAfterMs, null);
  assert.equal(messageToStore(message({ prepare: false }), context()).state, "committed");
});

test("a prepared message's checkAfter is a duration of a year and a day at most", () => {
  assert.equal(messageToStore(message({ prepare: true, checkAfter: "366d" }), context()).checkAfterMs, 366 * DAY);
  assert.deepEqual(refusal(message({ prepare: true, checkAfter: "367d" })), { field: "checkAfter", message: "checkAfter is over a year" });
  assert.deepEqual(refusal(message({ prepare: true, checkAfter: "later" })), {
    field: "checkAfter",
    message: '"later" is not a duration (use e.g. 500ms, 30s, 5m)',
  });
});

test("a message without a payload is refused; a null payload is a payload", () => {
  const { payload: _payload, ...withoutPayload } = message();
  assert.deepEqual(refusal(withoutPayload, context(), "messages[1]."), { field: "messages[1].payload", message: "messages[1].payload is required" });
  assert.equal(messageToStore(message({ payload: null }), context()).payload, null);
});

test("a message without an id gets a generated one in its app, and no content hash", () => {
  const ctx = context();
  const first = messageToStore(message(), ctx);
  const second = messageToStore(message(), ctx);
  assert.equal(first.id, "shop/generated-1");
  assert.equal(second.id, "shop/generated-2");
  assert.equal(first.app, "shop");
  assert.equal(first.contentHash, null, "a generated id cannot clash");
  assert.equal(first.payloadJson, undefined);
  assert.equal(messageToStore(message(), context({ app: null })).id, "generated-1", "the admin's ids are bare");
});

test("a producer's id is kept in its app's namespace and its content hashed as sent", () => {
  const stored = messageToStore(message({ id: "order-1001-paid", headers: { trace: "t1" } }), context());
  assert.equal(stored.id, "shop/order-1001-paid");
  assert.equal(messageToStore(message({ id: "order-1001-paid" }), context({ app: null })).id, "order-1001-paid");
  assert.ok(stored.contentHash instanceof Buffer);
  assert.equal(stored.payloadJson, '{"sn":"1001"}');
  assert.equal(stored.headersJson, '{"trace":"t1"}');
});

test("equal content hashes equally; every part of the content changes the hash", () => {
  const base = { id: "m-1", tag: "eu", key: "1001", payload: { sn: "1001", n: [1, 2] }, headers: { trace: "t1" } };
  const hash = (over: Partial<RequestedMessage> = {}, ctx = context()) => messageToStore(message({ ...base, ...over }), ctx).contentHash!.toString("hex");
  assert.equal(hash(), hash());
  assert.equal(hash({ delay: "5m" }), hash(), "when it is delivered is not content");
  assert.equal(hash({ prepare: true }), hash(), "nor whether it is prepared first");
  const others = [
    hash({ topic: "order.refunded" }),
    hash({ tag: "us" }),
    hash({ tag: null }),
    hash({ key: "1002" }),
    hash({ key: null }),
    hash({ payload: { sn: "1002", n: [1, 2] } }),
    hash({ headers: { trace: "t2" } }),
    hash({ headers: {} }),
    hash({}, context({ app: "billing" })),
    hash({}, context({ app: null })),
  ];
  assert.equal(new Set([hash(), ...others]).size, others.length + 1);
  // An absent tag, key or headers is the same content as null or empty.
  assert.equal(hash({ tag: undefined }), hash({ tag: null }));
  assert.equal(hash({ headers: undefined }), hash({ headers: {} }));
});

test("a payload whose numbers JSON.parse would change is kept as its exact text", () => {
  const exact = '{"amount":12345678901234567891,"big":1e400}';
  const inspection: ContentInspection = { walk: false, exactPayloads: new Map([[0, exact]]) };
  const stored = messageToStore(message({ id: "m-1", payload: JSON.parse(exact) }), context({ inspection }));
  assert.ok(stored.payload instanceof RawJson);
  assert.equal((stored.payload as RawJson).text, exact);
  assert.equal(stored.payloadJson, exact, "hashed as sent");
  const rounded = messageToStore(message({ id: "m-1", payload: JSON.parse(exact) }), context());
  assert.notDeepEqual(stored.contentHash, rounded.contentHash);
  // In a batch, message i takes the text of messages[i].
  const batch: ContentInspection = { walk: false, exactPayloads: new Map([[3, "12345678901234567891"]]) };
  assert.equal(
    (messageToStore(message({ payload: 12345678901234567000 }), context({ inspection: batch }), "messages[3].", 3).payload as RawJson).text,
    "12345678901234567891",
  );
  assert.equal(messageToStore(message({ payload: 1 }), context({ inspection: batch }), "messages[2].", 2).payload, 1);
  // Text the scan flagged but which parses exactly (no long number in it) is stored parsed.
  const plain: ContentInspection = { walk: false, exactPayloads: new Map([[0, '{"a":1}']]) };
  const parsed = messageToStore(message({ payload: { a: 1 } }), context({ inspection: plain }));
  assert.deepEqual(parsed.payload, { a: 1 });
  assert.equal(parsed.payloadJson, undefined);
});

test("text PostgreSQL cannot store is refused naming the field, when the body's text says to look", () => {
  const walk = context({ inspection: { walk: true, exactPayloads: null } });
  assert.deepEqual(refusal(message({ payload: { a: [0, 1, 2, { b: "x\u0000" }] } }), walk), {
    field: "payload.a[3].b",
    message: "payload.a[3].b contains a NUL character (\\u0000), which cannot be stored",
  });
  assert.equal(refusal(message({ key: "k\u0000" }), walk, "messages[4].").field, "messages[4].key");
  assert.equal(refusal(message({ headers: { trace: "\ud800" } }), walk).field, "headers.trace");
  let deep: unknown = 1;
  for (let i = 0; i < 65; i++) deep = [deep];
  assert.match(refusal(message({ payload: deep }), walk).message, /nests objects and arrays more than 64 deep/);
  // The walk is asked for by the look at the body's text, which finds every `\u0000` escape;
  // unasked, the parsed value is not walked (the fast path of a clean body).
  assert.equal(messageToStore(message({ key: "k\u0000" }), context()).key, "k\u0000");
});

test("the same id with the same content is the same message, keys in any order", () => {
  const first = messageToStore(message({ id: "m-1", payload: { a: 1, b: { c: [1, { d: 2, e: 3 }] } }, headers: { x: "1", y: "2" } }), context());
  const again = messageToStore(message({ id: "m-1", payload: { a: 1, b: { c: [1, { d: 2, e: 3 }] } }, headers: { x: "1", y: "2" } }), context());
  const reordered = messageToStore(message({ id: "m-1", payload: { b: { c: [1, { e: 3, d: 2 }] }, a: 1 }, headers: { y: "2", x: "1" } }), context());
  assert.ok(sameMessage(first, again));
  assert.notDeepEqual(first.contentHash, reordered.contentHash, "spelt otherwise: the hash cannot tell");
  assert.ok(sameMessage(first, reordered), "the content can");
  // A stored message may have no hash (a generated id); its content decides.
  assert.ok(sameMessage({ ...first, contentHash: null }, reordered));
  // Exact text stored, exact text sent again.
  const exact = new RawJson('{"n":12345678901234567891}');
  assert.ok(sameMessage({ ...first, payload: exact, contentHash: null }, { ...first, payload: new RawJson('{"n":12345678901234567891}'), contentHash: null }));
});

test("the same id with other content is a conflict", () => {
  const sent = { id: "m-1", tag: "eu", key: "1001", payload: { sn: "1001" }, headers: { trace: "t1" } };
  const stored = messageToStore(message(sent), context());
  const other = (over: Partial<RequestedMessage>, ctx = context()) => messageToStore(message({ ...sent, ...over }), ctx);
  const clashes: Array<[string, ReturnType<typeof other>]> = [
    ["payload", other({ payload: { sn: "1002" } })],
    ["payload type", other({ payload: { sn: 1001 } })],
    ["topic", other({ topic: "order.refunded" })],
    ["tag", other({ tag: "us" })],
    ["no tag", other({ tag: null })],
    ["key", other({ key: "1002" })],
    ["no key", other({ key: undefined })],
    ["headers", other({ headers: { trace: "t2" } })],
    ["more headers", other({ headers: { trace: "t1", extra: "x" } })],
    ["app", other({}, context({ app: "billing" }))],
  ];
  for (const [what, incoming] of clashes) {
    assert.equal(sameMessage(stored, incoming), false, what);
    assert.equal(sameMessage({ ...stored, contentHash: null }, { ...incoming, contentHash: null }), false, `${what}, compared without hashes`);
  }
});
