import { test } from "node:test";
import assert from "node:assert/strict";
import {
  admits,
  afterResults,
  CircuitPolicyError,
  compileCircuitPolicy,
  count,
  DEFAULT_CIRCUIT,
  HEALTHY,
  merge,
  NO_RESULTS,
  pauseDue,
  probeDue,
  type Tally,
} from "../src/domain/circuitBreaker.ts";

// The breaker's decisions, driven by hand-built tallies: no database, no clock but the one passed in.

const POLICY = { failures: 3, probeEveryMs: 1000, pauseAfterMs: 10_000 };
const tallyOf = (...oks: boolean[]): Tally => oks.reduce((t, ok) => count(t, ok), NO_RESULTS);

test("a subscription's circuit policy: defaults when absent, off with null or false, each bad field named", () => {
  assert.deepEqual(compileCircuitPolicy(undefined), DEFAULT_CIRCUIT);
  assert.deepEqual(DEFAULT_CIRCUIT, { failures: 20, probeEveryMs: 30_000, pauseAfterMs: 3 * 86_400_000 });
  assert.equal(compileCircuitPolicy(null), null);
  assert.equal(compileCircuitPolicy(false), null);
  assert.deepEqual(compileCircuitPolicy({ failures: 5, probeEvery: "2s", pauseAfter: null }), { failures: 5, probeEveryMs: 2000, pauseAfterMs: null });
  for (const [input, field] of [
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
  assert.deepEqual(tallyOf(false, true, false, false), { failures: 3, trailingFailures: 2, succeeded: true, throttledUntil: null });
  assert.deepEqual(merge(tallyOf(false, false), tallyOf(false)), { failures: 3, trailingFailures: 3, succeeded: false, throttledUntil: null });
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
  assert.deepEqual(opened.next, { state: "open", consecutiveFailures: 3, openedAt: 100, nextProbeAt: 1100, throttledUntil: null });
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
