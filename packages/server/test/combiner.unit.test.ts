import { test } from "node:test";
import assert from "node:assert/strict";
import { Combiner, type CombinerLimits } from "../src/publish/combiner.ts";
import { TidingsError } from "../src/domain/errors.ts";
import { deferred, settle, until, type Deferred } from "./support/fakes.ts";

// The write-combiner behind single publishes and commits, over a fake write whose calls the
// test holds open: what waits, and what goes together, is decided here.

/** What a database refuses for one item's content. */
class ItemRefused extends Error {}

/**
 * A combiner over a fake write: each write is recorded and, if the test queued a hold, waits
 * for it. A batch holding an item starting with "bad" is refused as an item error; "down"
 * fails the whole write as the database being away.
 */
function combiner(maxBatch: number, maxInFlight: number, limits: Partial<CombinerLimits> = {}) {
  const writes: string[][] = [];
  const holds: Array<Deferred<void>> = [];
  let running = 0;
  let mostRunning = 0;
  const c = new Combiner<string, string>(
    async (items) => {
      writes.push([...items]);
      running++;
      mostRunning = Math.max(mostRunning, running);
      try {
        const hold = holds.shift();
        if (hold) await hold.promise;
        if (items.includes("down")) throw Object.assign(new Error("connection terminated"), { code: "08006" });
        if (items.some((i) => i.startsWith("bad"))) throw new ItemRefused(`refused: ${items.join(",")}`);
        return items.map((i) => `${i}:stored`);
      } finally {
        running--;
      }
    },
    maxBatch,
    maxInFlight,
    { maxWaiting: Infinity, maxWaitingBytes: Infinity, isItemError: (e) => e instanceof ItemRefused, ...limits },
  );
  /** Holds the next `n` writes open until the test resolves them. */
  const hold = (n = 1) =>
    Array.from({ length: n }, () => {
      const d = deferred<void>();
      holds.push(d);
      return d;
    });
  return {
    c,
    writes,
    hold,
    get mostRunning() {
      return mostRunning;
    },
  };
}

test("a lone call is written at once, on its own", async () => {
  const t = combiner(10, 1);
  const outcome = t.c.push("a");
  assert.deepEqual(t.writes, [["a"]], "written in the same turn");
  assert.equal(await outcome, "a:stored");
});

test("while a write runs, later calls wait and go together in the next one, at most maxBatch each; each caller gets its own outcome", async () => {
  const t = combiner(3, 1);
  const [first, second] = t.hold(2);
  const a = t.c.push("a");
  const rest = ["b", "c", "d", "e"].map((i) => t.c.push(i));
  await settle();
  assert.deepEqual(t.writes, [["a"]], "one write at a time");
  assert.equal(t.c.queued, 4);
  first!.resolve();
  assert.equal(await a, "a:stored");
  await until("the next write", () => t.writes.length === 2);
  assert.deepEqual(t.writes[1], ["b", "c", "d"]);
  second!.resolve();
  assert.deepEqual(await Promise.all(rest), ["b:stored", "c:stored", "d:stored", "e:stored"]);
  assert.deepEqual(t.writes, [["a"], ["b", "c", "d"], ["e"]]);
  assert.equal(t.mostRunning, 1);
});

test("no more writes run at once than maxInFlight", async () => {
  const t = combiner(100, 2);
  const [w1, w2] = t.hold(2);
  const outcomes = ["a", "b", "c", "d"].map((i) => t.c.push(i));
  assert.deepEqual(t.writes, [["a"], ["b"]]);
  w2!.resolve();
  await until("a third write once one ended", () => t.writes.length === 3);
  assert.deepEqual(t.writes[2], ["c", "d"]);
  w1!.resolve();
  assert.deepEqual(await Promise.all(outcomes), ["a:stored", "b:stored", "c:stored", "d:stored"]);
  assert.equal(t.mostRunning, 2);
});

test("past maxWaiting a call is refused at once with unavailable (503, retry after a second), and accepted again once the queue drains", async () => {
  const t = combiner(10, 1, { maxWaiting: 2 });
  const [w1] = t.hold();
  const accepted = ["a", "b", "c"].map((i) => t.c.push(i)); // a is written; b and c wait
  const refused = t.c.push("d");
  await assert.rejects(refused, (e: unknown) => {
    assert.ok(e instanceof TidingsError);
    assert.equal(e.code, "unavailable");
    assert.equal(e.retryable, true);
    assert.deepEqual(e.details, { retryAfterSeconds: 1 });
    return true;
  });
  w1!.resolve();
  assert.deepEqual(await Promise.all(accepted), ["a:stored", "b:stored", "c:stored"]);
  assert.ok(
    t.writes.every((w) => !w.includes("d")),
    "the refused item was never written",
  );
  assert.equal(await t.c.push("e"), "e:stored");
});

test("past maxWaitingBytes a call is refused at once; a lone item larger than the limit still goes", async () => {
  const t = combiner(10, 1, { maxWaitingBytes: 100 });
  const [w1] = t.hold();
  const big = t.c.push("big", 500); // nothing waits: written at once, whatever its size
  const b = t.c.push("b", 60);
  await assert.rejects(t.c.push("c", 50), (e: unknown) => e instanceof TidingsError && e.code === "unavailable");
  const d = t.c.push("d", 40); // 60 + 40 fits
  w1!.resolve();
  assert.deepEqual(await Promise.all([big, b, d]), ["big:stored", "b:stored", "d:stored"]);
  // Written items' bytes no longer count: 90 + 10 fit again.
  const [w2] = t.hold();
  const e = t.c.push("e", 10);
  const f = t.c.push("f", 90);
  const g = t.c.push("g", 10);
  w2!.resolve();
  assert.deepEqual(await Promise.all([e, f, g]), ["e:stored", "f:stored", "g:stored"]);
});

test("an item error splits the batch in halves until only the culprit fails", async () => {
  const t = combiner(100, 1);
  const [w1] = t.hold();
  const first = t.c.push("first");
  const items = ["a", "b", "c", "d", "bad-e", "f", "g"];
  const outcomes = items.map((i) => t.c.push(i));
  w1!.resolve();
  await first;
  const settled = await Promise.allSettled(outcomes);
  settled.forEach((s, i) => {
    if (items[i] === "bad-e") {
      assert.equal(s.status, "rejected");
      assert.ok((s as PromiseRejectedResult).reason instanceof ItemRefused);
    } else {
      assert.deepEqual(s, { status: "fulfilled", value: `${items[i]}:stored` }, items[i]);
    }
  });
  assert.ok(
    t.writes.some((w) => w.length === 1 && w[0] === "bad-e"),
    "the culprit was tried alone",
  );
  const stored = t.writes
    .slice(1)
    .filter((w) => !w.includes("bad-e"))
    .flat();
  assert.deepEqual(stored.sort(), ["a", "b", "c", "d", "f", "g"], "every other item stored exactly once");
});

test("a write failing as a whole (the database away) fails every caller in that batch, and only them", async () => {
  const t = combiner(100, 1);
  const [w1] = t.hold();
  const first = t.c.push("first");
  const doomed = ["a", "down", "b"].map((i) => t.c.push(i));
  w1!.resolve();
  await first;
  const settled = await Promise.allSettled(doomed);
  assert.ok(settled.every((s) => s.status === "rejected" && (s.reason as { code?: string }).code === "08006"));
  assert.equal(t.writes.length, 2, "not split: the same write would fail in halves too");
  assert.equal(await t.c.push("later"), "later:stored");
});
