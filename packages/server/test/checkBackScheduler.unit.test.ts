import { test } from "node:test";
import assert from "node:assert/strict";
import { CheckBackScheduler, type CheckBackOps, type CheckCall } from "../src/checkBack/checkBackScheduler.ts";
import type { CheckLog, DueCheck } from "../src/domain/check.ts";
import { deferred, recordingLogger, until, type Deferred } from "./support/fakes.ts";

// The check-back scheduler over fake operations: the producer's answers are promises the test
// settles, and every operation the scheduler applies is recorded in order.

let nextSeq = 1;
function due(checks = 0): DueCheck {
  const seq = nextSeq++;
  return {
    message: {
      seq,
      id: `shop/order-${seq}-paid`,
      app: "shop",
      topic: "order.paid",
      tag: null,
      key: String(seq),
      payload: { sn: seq },
      headers: {},
      state: "prepared",
      deliverAt: "2026-01-01T00:00:00.000Z",
      createdAt: "2026-01-01T00:00:00.000Z",
      committedAt: null,
      rolledBackAt: null,
      checks,
      nextCheckAt: "2026-01-01T00:00:10.000Z",
      inDoubtAt: null,
      completedAt: null,
    },
    checkUrl: "http://127.0.0.1:9000/tidings/check",
    secret: "whsec_dGVzdHNlY3JldA==",
    lease: `node-a/${seq}`,
  };
}

const answer = (status: "commit" | "rollback" | "unknown"): CheckCall => ({ statusCode: 200, answer: status, error: null });
const NO_ANSWER: CheckCall = { statusCode: 500, answer: null, error: "HTTP 500: database is down" };

interface Call {
  check: DueCheck;
  checkNo: number;
  signal: AbortSignal;
  reply: Deferred<CheckCall>;
}

interface Options {
  pollIntervalMs?: number;
  concurrency?: number;
  /** The producer's answer to a check; undefined: the call stays open until the test answers it. */
  answers?: (check: DueCheck) => CheckCall | undefined;
  /** What `unresolved` reports for a message (default: another check scheduled). */
  inDoubt?: (id: string) => { inDoubt: boolean } | null;
  /** Operations that fail, by name and message id. */
  failing?: (op: string, id: string) => boolean;
  /** Holds each claim open until the test resolves the returned deferred. */
  claimGate?: () => Promise<void>;
}

function harness(options: Options = {}) {
  const queue: DueCheck[] = [];
  const claims: number[] = [];
  /** Per claim: its limit plus the calls open when it was made. */
  const claimedOver: number[] = [];
  const calls: Call[] = [];
  let mostOpen = 0;
  const openCalls = () => calls.filter((c) => !c.reply.settled).length;
  /** Every operation applied, as "op id", in order. */
  const applied: string[] = [];
  const logged: CheckLog[] = [];
  const released: DueCheck[] = [];
  let claimFails = 0;
  const op = async (name: string, id: string) => {
    applied.push(`${name} ${id}`);
    if (options.failing?.(name, id)) throw new Error(`${name} failed`);
  };
  const ops: CheckBackOps = {
    async claim(limit) {
      claims.push(limit);
      claimedOver.push(limit + openCalls());
      await options.claimGate?.();
      if (claimFails > 0) {
        claimFails--;
        throw Object.assign(new Error("connection terminated"), { code: "08006" });
      }
      return queue.splice(0, limit);
    },
    call(check, checkNo, signal) {
      const reply = deferred<CheckCall>();
      calls.push({ check, checkNo, signal, reply });
      mostOpen = Math.max(mostOpen, openCalls());
      // As the HTTP transport does: shutdown's signal cuts the call short.
      signal.addEventListener("abort", () => reply.resolve({ statusCode: null, answer: null, error: "aborted", aborted: true }), { once: true });
      const given = options.answers?.(check);
      if (given) reply.resolve(given);
      return reply.promise;
    },
    async release(check) {
      released.push(check);
      await op("release", check.message.id);
    },
    commit: (id) => op("commit", id),
    rollback: (id) => op("rollback", id),
    async unresolved(check) {
      await op("unresolved", check.message.id);
      return options.inDoubt ? options.inDoubt(check.message.id) : { inDoubt: false };
    },
    counted: (id) => op("counted", id),
    async log(entry) {
      logged.push(entry);
      await op("log", entry.messageId);
    },
    // The check URL's failures in a row are the store's (checkUrlHealth.ts); this loop only reports each call.
    async checkUrl() {},
  };
  const log = recordingLogger();
  const scheduler = new CheckBackScheduler(ops, { pollIntervalMs: 60_000, concurrency: 8, ...options }, log);
  return {
    scheduler,
    queue,
    claims,
    claimedOver,
    calls,
    get mostOpen() {
      return mostOpen;
    },
    applied,
    logged,
    released,
    log,
    failNextClaims: (n: number) => (claimFails = n),
    /** The operations applied for one message, in order. */
    appliedTo: (check: DueCheck) => applied.filter((a) => a.endsWith(` ${check.message.id}`)).map((a) => a.split(" ")[0]),
    open: () => calls.filter((c) => !c.reply.settled),
  };
}

test("each due check asks the producer, logs the answer and applies it: commit, rollback, or another check later", async () => {
  const committed = due(2);
  const rolledBack = due(0);
  const unknown = due(5);
  const failed = due(1);
  const replies = new Map([
    [committed, answer("commit")],
    [rolledBack, answer("rollback")],
    [unknown, answer("unknown")],
    [failed, NO_ANSWER],
  ]);
  const h = harness({ answers: (c) => replies.get(c) });
  h.queue.push(committed, rolledBack, unknown, failed);
  h.scheduler.start();
  await until("four checks applied", () => h.applied.filter((a) => !a.startsWith("log") && !a.startsWith("counted")).length === 4);

  assert.deepEqual(h.appliedTo(committed), ["log", "counted", "commit"]);
  assert.deepEqual(h.appliedTo(rolledBack), ["log", "counted", "rollback"]);
  assert.deepEqual(h.appliedTo(unknown), ["log", "unresolved"]);
  assert.deepEqual(h.appliedTo(failed), ["log", "unresolved"]);
  assert.deepEqual(
    h.calls.map((c) => c.checkNo),
    [3, 1, 6, 2],
    "each call numbered after the checks already made",
  );
  const entry = h.logged.find((l) => l.messageId === failed.message.id)!;
  assert.equal(entry.checkNo, 2);
  assert.equal(entry.statusCode, 500);
  assert.equal(entry.answer, null);
  assert.equal(entry.error, "HTTP 500: database is down");
  assert.ok(entry.latencyMs >= 0 && entry.startedAt instanceof Date);
  assert.equal(h.released.length, 0);
  await h.scheduler.stop(0);
});

test("a message whose checks ran out is logged as in doubt; one with checks left, or whose lease was lost, is not", async () => {
  const exhausted = due(14);
  const more = due(3);
  const lost = due(7);
  const h = harness({
    answers: () => answer("unknown"),
    inDoubt: (id) => (id === exhausted.message.id ? { inDoubt: true } : id === more.message.id ? { inDoubt: false } : null),
  });
  h.queue.push(exhausted, more, lost);
  h.scheduler.start();
  await until("three unresolved", () => h.applied.filter((a) => a.startsWith("unresolved")).length === 3);
  const doubts = h.log.lines.filter((l) => l.msg === "message is in doubt: checks exhausted");
  assert.equal(doubts.length, 1);
  assert.deepEqual(doubts[0]!.fields, { messageId: exhausted.message.id, checks: 15 });
  await h.scheduler.stop(0);
});

test("an answer that cannot be applied is logged and left to the lease; the other checks go on", async () => {
  const broken = due();
  const fine = due();
  const h = harness({ answers: () => answer("commit"), failing: (op, id) => op === "commit" && id === broken.message.id });
  h.queue.push(broken, fine);
  h.scheduler.start();
  await until("both commits tried", () => h.applied.filter((a) => a.startsWith("commit")).length === 2);
  const warned = h.log.lines.filter((l) => l.msg === "applying a check-back answer failed");
  assert.equal(warned.length, 1);
  assert.equal(warned[0]!.fields.messageId, broken.message.id);
  assert.equal(h.released.length, 0, "not given back: another round checks it when its lease ends");
  await h.scheduler.stop(0);
});

test("a claim that fails is logged and the next round claims again", async () => {
  const h = harness({ pollIntervalMs: 5, answers: () => answer("rollback") });
  const check = due();
  h.queue.push(check);
  h.failNextClaims(1);
  h.scheduler.start();
  await until("the check rolled back", () => h.applied.includes(`rollback ${check.message.id}`));
  assert.ok(h.claims.length >= 2);
  assert.ok(h.log.lines.some((l) => l.msg === "claiming check-backs failed"));
  await h.scheduler.stop(0);
});

test("a claim that came back full is followed by another soon, not a poll interval later", async () => {
  const h = harness({ concurrency: 2, answers: () => answer("commit") });
  const checks = Array.from({ length: 5 }, () => due());
  h.queue.push(...checks);
  h.scheduler.start();
  await until("all five committed", () => h.applied.filter((a) => a.startsWith("commit")).length === 5);
  assert.deepEqual(h.claims, [2, 2, 2], "the third came back short: the next one waits for the (minute-long) interval");
  await h.scheduler.stop(0);
});

test("no more checks run at once than its concurrency, and a claim asks only for the free room", async () => {
  const h = harness({ concurrency: 3, pollIntervalMs: 2 });
  const checks = Array.from({ length: 7 }, () => due());
  h.queue.push(...checks);
  h.scheduler.start();
  for (let answered = 0; answered < 7; answered++) {
    const expected = Math.min(3, 7 - answered);
    await until(`${expected} calls open`, () => h.open().length === expected);
    h.open()[0]!.reply.resolve(answer("commit"));
  }
  await until("all seven committed", () => h.applied.filter((a) => a.startsWith("commit")).length === 7);
  assert.equal(h.calls.length, 7);
  assert.equal(h.mostOpen, 3);
  assert.ok(
    h.claimedOver.every((n) => n <= 3),
    `claims asked past the free room: ${h.claimedOver.join(",")}`,
  );
  await h.scheduler.stop(0);
});

test("stop lets the checks in flight finish within the grace, and claims no more", async () => {
  const h = harness({ pollIntervalMs: 2 });
  const check = due();
  h.queue.push(check);
  h.scheduler.start();
  await until("the call made", () => h.calls.length === 1);
  const stopping = h.scheduler.stop(5000);
  const claimsAtStop = h.claims.length;
  h.calls[0]!.reply.resolve(answer("commit"));
  await stopping;
  assert.deepEqual(h.appliedTo(check), ["log", "counted", "commit"]);
  assert.equal(h.calls[0]!.signal.aborted, false);
  h.queue.push(due());
  const stoppedAt = Date.now();
  await until("ten poll intervals to pass", () => Date.now() - stoppedAt >= 20);
  assert.equal(h.claims.length, claimsAtStop, "no claim after stop");
});

test("stop aborts the calls still open after the grace and gives their leases back, logging nothing", async () => {
  const h = harness();
  const checks = [due(), due()];
  h.queue.push(...checks);
  h.scheduler.start();
  await until("both calls made", () => h.calls.length === 2);
  await h.scheduler.stop(20);
  assert.ok(
    h.calls.every((c) => c.signal.aborted),
    "the calls saw the shutdown signal",
  );
  assert.deepEqual(h.released, checks);
  assert.deepEqual(h.applied.sort(), checks.map((c) => `release ${c.message.id}`).sort());
  assert.equal(h.logged.length, 0);
});

test("checks claimed while stopping are still settled or given back", async () => {
  const gate = deferred<void>();
  const h = harness({ claimGate: () => gate.promise });
  const check = due();
  h.queue.push(check);
  h.scheduler.start();
  await until("the claim under way", () => h.claims.length === 1);
  const stopping = h.scheduler.stop(20);
  gate.resolve();
  await stopping;
  assert.equal(h.calls.length, 1);
  assert.deepEqual(h.released, [check], "its lease given back, not left to run out");
});
