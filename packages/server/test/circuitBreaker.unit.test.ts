import { test } from "node:test";
import assert from "node:assert/strict";
import {
  admits,
  afterResults,
  CircuitPolicyError,
  compileCircuitPolicy,
  count,
  describeCircuit,
  DEFAULT_CIRCUIT,
  HEALTHY,
  merge,
  NO_RESULTS,
  pauseDue,
  probeDue,
  storedCircuitPolicy,
  type CircuitPolicy,
  type Tally,
} from "../src/domain/circuitBreaker.ts";

// The breaker's decisions, driven by hand-built tallies: no database, no clock but the one passed in.

const POLICY: CircuitPolicy = { failures: 3, ratio: null, probeEveryMs: 1000, pauseAfterMs: 10_000 };
/** Opens when half the attempts of a 10 s window failed, once it holds 10. */
const RATIO: CircuitPolicy = { failures: null, ratio: { failureRatio: 0.5, windowMs: 10_000, minAttempts: 10 }, probeEveryMs: 1000, pauseAfterMs: null };
const tallyOf = (...oks: boolean[]): Tally => oks.reduce((t, ok) => count(t, ok), NO_RESULTS);

test("a subscription's circuit policy: defaults when absent, off with null or false, each bad field named", () => {
  assert.deepEqual(compileCircuitPolicy(undefined), DEFAULT_CIRCUIT);
  assert.deepEqual(DEFAULT_CIRCUIT, { failures: 20, ratio: null, probeEveryMs: 30_000, pauseAfterMs: 3 * 86_400_000 });
  assert.equal(compileCircuitPolicy(null), null);
  assert.equal(compileCircuitPolicy(false), null);
  assert.deepEqual(compileCircuitPolicy({ failures: 5, probeEvery: "2s", pauseAfter: null }), {
    failures: 5,
    ratio: null,
    probeEveryMs: 2000,
    pauseAfterMs: null,
  });
  // A ratio alone: no count of failures in a row, the window and least attempts by default.
  assert.deepEqual(compileCircuitPolicy({ failureRatio: 0.5 }), {
    failures: null,
    ratio: { failureRatio: 0.5, windowMs: 60_000, minAttempts: 20 },
    probeEveryMs: 30_000,
    pauseAfterMs: 3 * 86_400_000,
  });
  assert.deepEqual(compileCircuitPolicy({ failures: 7, failureRatio: 1, window: "5s", minAttempts: 3 })?.ratio, {
    failureRatio: 1,
    windowMs: 5000,
    minAttempts: 3,
  });
  assert.equal(compileCircuitPolicy({ failures: 7, failureRatio: 1 })?.failures, 7);
  // A policy stored before failure ratios existed reads as a count alone.
  assert.deepEqual(storedCircuitPolicy({ failures: 5, probeEveryMs: 2000, pauseAfterMs: null }), {
    failures: 5,
    ratio: null,
    probeEveryMs: 2000,
    pauseAfterMs: null,
  });
  assert.equal(storedCircuitPolicy(null), null);
  for (const [input, field] of [
    [{ failureRatio: 0 }, "circuit.failureRatio"],
    [{ failureRatio: 1.5 }, "circuit.failureRatio"],
    [{ failureRatio: 0.5, window: "500ms" }, "circuit.window"],
    [{ failureRatio: 0.5, window: "a minute" }, "circuit.window"],
    [{ failureRatio: 0.5, minAttempts: 0 }, "circuit.minAttempts"],
    [{ window: "1m" }, "circuit.window"],
    [{ minAttempts: 5 }, "circuit.minAttempts"],
    [{ failures: 0 }, "circuit.failures"],
    [{ probeEvery: "soon" }, "circuit.probeEvery"],
    [{ probeEvery: "10ms" }, "circuit.probeEvery"],
    [{ pauseAfter: "3 days" }, "circuit.pauseAfter"],
  ] as const) {
    assert.throws(
      () => compileCircuitPolicy(input),
      (e: unknown) => e instanceof CircuitPolicyError && e.field === field,
    );
  }
});

test("tallies count failures after the last success, in order, across batches", () => {
  assert.deepEqual(tallyOf(false, true, false, false), {
    attempts: 4,
    failures: 3,
    trailingFailures: 2,
    succeeded: true,
    probeSucceeded: false,
    throttledUntil: null,
  });
  assert.deepEqual(merge(tallyOf(false, false), tallyOf(false)), {
    attempts: 3,
    failures: 3,
    trailingFailures: 3,
    succeeded: false,
    probeSucceeded: false,
    throttledUntil: null,
  });
  assert.deepEqual(merge(tallyOf(false, true), tallyOf(false)).trailingFailures, 1);
  assert.equal(merge(count(NO_RESULTS, false, 500), count(NO_RESULTS, false, 300)).throttledUntil, 500);
});

test("the circuit opens at the policy's count of failures in a row, and a success in between resets the count", () => {
  const two = afterResults(HEALTHY, tallyOf(false, false), POLICY, 0);
  assert.equal(two.next.state, "closed");
  assert.equal(two.event, null);
  const reset = afterResults(two.next, tallyOf(true, false), POLICY, 10);
  assert.equal(reset.next.consecutiveFailures, 1);
  assert.equal(reset.next.state, "closed");
  const opened = afterResults(two.next, tallyOf(false), POLICY, 100);
  assert.equal(opened.event, "opened");
  assert.deepEqual(opened.next, { ...HEALTHY, state: "open", consecutiveFailures: 3, openedAt: 100, nextProbeAt: 1100 });
  assert.equal(opened.why, "3 attempts failed in a row");
  // Without a policy it never opens.
  assert.equal(afterResults(HEALTHY, tallyOf(false, false, false, false), null, 0).next.state, "closed");
});

test("while open nothing but a probe goes; a failed probe keeps it open, a success closes it", () => {
  const open = afterResults(HEALTHY, tallyOf(false, false, false), POLICY, 0).next;
  assert.equal(admits(open, POLICY, 50), false);
  assert.equal(probeDue(open, POLICY, 999), false);
  assert.equal(probeDue(open, POLICY, 1000), true);
  // The probe was taken: half open until its deadline (the next probe time).
  const probing = { ...open, state: "half_open" as const, nextProbeAt: 2000 };
  assert.equal(probeDue(probing, POLICY, 1500), false);
  const failed = afterResults(probing, tallyOf(false), POLICY, 1200);
  assert.equal(failed.event, null);
  assert.equal(failed.next.state, "open");
  assert.equal(failed.next.nextProbeAt, 2000);
  assert.equal(failed.next.openedAt, 0);
  const closed = afterResults(probing, tallyOf(true), POLICY, 1300);
  assert.equal(closed.event, "closed");
  assert.deepEqual(closed.next, HEALTHY);
  assert.equal(admits(closed.next, POLICY, 1300), true);
  // A breaker turned off lets everything go, whatever the stored state.
  assert.equal(admits(open, null, 50), true);
});

test("open longer than pauseAfter, the subscription is to be paused; never with pauseAfter null", () => {
  const open = afterResults(HEALTHY, tallyOf(false, false, false), POLICY, 0).next;
  assert.equal(pauseDue(open, POLICY, 9_999), false);
  assert.equal(pauseDue(open, POLICY, 10_000), true);
  assert.equal(pauseDue(open, { ...POLICY, pauseAfterMs: null }, 1e12), false);
  assert.equal(pauseDue(HEALTHY, POLICY, 1e12), false);
});

test("a 429's Retry-After holds the whole subscription until it ends, closed circuit or not", () => {
  const throttled = afterResults(HEALTHY, count(NO_RESULTS, false, 5000), POLICY, 0).next;
  assert.equal(throttled.state, "closed");
  assert.equal(admits(throttled, POLICY, 4999), false);
  assert.equal(admits(throttled, POLICY, 5000), true);
  assert.equal(admits(throttled, null, 4999), false);
});

/** `n` results, the first `failed` of them failures. */
const mixed = (n: number, failed: number): Tally => tallyOf(...Array.from({ length: n }, (_, i) => i >= failed));

test("a failure ratio opens the circuit only once its window holds the least number of attempts", () => {
  // 6 of 6 failed: every one, but too few to judge.
  const few = afterResults(HEALTHY, tallyOf(false, false, false, false, false, false), RATIO, 0);
  assert.equal(few.event, null);
  assert.deepEqual([few.next.windowStartedAt, few.next.windowAttempts, few.next.windowFailures], [0, 6, 6]);
  // 4 more (3 successes) within the window: 7 of 10 failed, at least half.
  const opened = afterResults(few.next, tallyOf(true, false, true, true), RATIO, 9_999);
  assert.equal(opened.event, "opened");
  assert.equal(opened.why, "7 of 10 attempts failed within 10s");
  assert.deepEqual(opened.next, { ...HEALTHY, state: "open", consecutiveFailures: 0, openedAt: 9_999, nextProbeAt: 10_999 });
  // Exactly the ratio opens it too.
  assert.equal(afterResults(HEALTHY, mixed(10, 5), RATIO, 0).event, "opened");
});

test("below the ratio the circuit stays closed, however many failures the window counts; successes lower the ratio", () => {
  // 4 of every 10 failed, 100 attempts in the window: 40 failures, never half of the attempts.
  let h = afterResults(HEALTHY, mixed(10, 4), RATIO, 0).next;
  for (let i = 1; i <= 9; i++) {
    const r = afterResults(h, mixed(10, 4), RATIO, i * 1000 - 1);
    assert.equal(r.event, null, `after ${i + 1} batches`);
    h = r.next;
  }
  assert.equal(h.state, "closed");
  assert.deepEqual([h.windowAttempts, h.windowFailures], [100, 40]);
  // Successes after failures: closed, the ratio falling.
  const ok = afterResults(h, tallyOf(true, true), RATIO, 9_999).next;
  assert.equal(ok.state, "closed");
  assert.deepEqual([ok.windowAttempts, ok.windowFailures], [102, 40]);
});

test("a window that has ended is forgotten: the next result starts a new one", () => {
  // 9 of 9 failed in the first window: one short of judging.
  const first = afterResults(HEALTHY, mixed(9, 9), RATIO, 1000).next;
  assert.equal(first.state, "closed");
  // The window (1000 to 11000) has ended: the next failure counts in a new one, alone.
  const rolled = afterResults(first, tallyOf(false), RATIO, 11_000);
  assert.equal(rolled.event, null);
  assert.deepEqual([rolled.next.windowStartedAt, rolled.next.windowAttempts, rolled.next.windowFailures], [11_000, 1, 1]);
  // Within the window it would have opened.
  assert.equal(afterResults(first, tallyOf(false), RATIO, 10_999).event, "opened");
});

test("with both a count and a ratio either opens the circuit; a ratio circuit probes and closes as a count's does", () => {
  const both: CircuitPolicy = { ...RATIO, failures: 3 };
  const inARow = afterResults(HEALTHY, tallyOf(true, true, true, true, true, true, false, false, false), both, 0);
  assert.equal(inARow.event, "opened");
  assert.equal(inARow.why, "3 attempts failed in a row");
  const byRatio = afterResults(HEALTHY, tallyOf(false, false, true, false, false, true, false, false, true, true), both, 0);
  assert.equal(byRatio.event, "opened");
  assert.match(byRatio.why!, /6 of 10 attempts failed/);

  const open = afterResults(HEALTHY, mixed(10, 10), RATIO, 0).next;
  assert.equal(admits(open, RATIO, 500), false);
  assert.equal(probeDue(open, RATIO, 999), false);
  assert.equal(probeDue(open, RATIO, 1000), true);
  const probing = { ...open, state: "half_open" as const, nextProbeAt: 2000 };
  // A failed probe: still open, nothing counted in a window while open.
  const failed = afterResults(probing, tallyOf(false), RATIO, 1200);
  assert.equal(failed.event, null);
  assert.equal(failed.next.state, "open");
  assert.deepEqual([failed.next.windowStartedAt, failed.next.windowAttempts], [null, 0]);
  // Successes of attempts in flight when it opened do not close it (a receiver failing 60% of
  // the time still answers some); a probe's success does, with a fresh window: one failure after
  // it does not reopen it.
  const inFlight = afterResults(failed.next, tallyOf(true, true), RATIO, 1300);
  assert.equal(inFlight.event, null);
  assert.equal(inFlight.next.state, "open");
  const closed = afterResults(failed.next, count(NO_RESULTS, true, null, true), RATIO, 2100);
  assert.equal(closed.event, "closed");
  assert.deepEqual(closed.next, HEALTHY);
  assert.equal(afterResults(closed.next, tallyOf(false), RATIO, 2200).next.state, "closed");
});

test("a policy in a few words, as the metrics label it", () => {
  assert.equal(describeCircuit(null), "off");
  assert.equal(describeCircuit(DEFAULT_CIRCUIT), "20 in a row");
  assert.equal(describeCircuit(compileCircuitPolicy({ failureRatio: 0.5, window: "60s", minAttempts: 10 })), "50% of 10+ in 1m");
  assert.equal(describeCircuit(compileCircuitPolicy({ failures: 5, failureRatio: 0.25 })), "5 in a row or 25% of 20+ in 1m");
});
