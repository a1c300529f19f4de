import { test } from "node:test";
import assert from "node:assert/strict";
import { waitFor } from "@tidings/testkit/wait";
import { Deadlines, SWEEP_MS, type Tracked } from "../src/transports/deadlines.ts";

function tracked(signal?: AbortSignal) {
  const t: Tracked & { ended: string | null; endedAt: number } = {
    deadlineAt: 0,
    signal,
    ended: null,
    endedAt: 0,
    expire() {
      t.ended ??= "expired";
      t.endedAt = performance.now();
    },
    abort() {
      t.ended ??= "aborted";
    },
  };
  return t;
}

test("an exchange still running at its deadline is expired within a sweep of it; one done before is not", async () => {
  const deadlines = new Deadlines(300);
  const slow = tracked();
  const quick = tracked();
  const started = performance.now();
  deadlines.add(slow);
  deadlines.add(quick);
  deadlines.done(quick);
  await waitFor("the slow one expired", () => slow.ended !== null, 3000, 10);
  assert.equal(slow.ended, "expired");
  const late = slow.endedAt - started;
  assert.ok(late >= 300 && late < 300 + SWEEP_MS + 200, `expired after ${late.toFixed(0)} ms`);
  assert.equal(quick.ended, null);
  deadlines.close();
});

test("aborting a signal ends the exchanges tracked with it, and only those", async () => {
  const deadlines = new Deadlines(60_000);
  const shutdown = new AbortController();
  const a = tracked(shutdown.signal);
  const b = tracked(shutdown.signal);
  const other = tracked(new AbortController().signal);
  for (const t of [a, b, other]) deadlines.add(t);
  deadlines.done(b);
  shutdown.abort();
  assert.equal(a.ended, "aborted");
  assert.equal(b.ended, null, "one that ended before is left alone");
  assert.equal(other.ended, null);
  deadlines.close();
});
