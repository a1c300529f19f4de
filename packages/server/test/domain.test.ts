import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDuration, formatDuration } from "../src/domain/duration.ts";
import { afterFailure, compileRetryPolicy, type RetryPolicyError } from "../src/domain/retrySchedule.ts";
import { canonicalJson } from "../src/domain/canonical.ts";
import { parseRetryAfter } from "../src/transports/httpTransport.ts";
import { compileEndpointCheck } from "../src/http/endpointPolicy.ts";
import type { TidingsError } from "../src/domain/errors.ts";
import { SignInLimiter } from "../src/http/console/signInLimiter.ts";

test("durations parse in every unit and reject anything else", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("5m"), 300_000);
  assert.equal(parseDuration("2h"), 7_200_000);
  assert.equal(parseDuration("1d"), 86_400_000);
  for (const bad of ["", "5", "m", "1.5s", "-1s", "5 min", "10x"]) assert.equal(parseDuration(bad), undefined, bad);
  assert.equal(formatDuration(90_000), "90s");
  assert.equal(formatDuration(3_600_000), "1h");
  assert.equal(formatDuration(1500), "1500ms");
});

test("the default schedule escalates from at once to 10 h and then the delivery is dead", () => {
  const policy = compileRetryPolicy();
  assert.equal(policy.maxAttempts, 9);
  const delays: number[] = [];
  for (let attempt = 1; ; attempt++) {
    const next = afterFailure(policy, attempt, 0);
    if (next.kind === "dead") break;
    delays.push(next.delayMs);
  }
  assert.deepEqual(delays.map(formatDuration), ["1m", "5m", "10m", "30m", "1h", "2h", "5h", "10h"]);
});

test("max attempts beyond the schedule repeat its last step; the window ends retries", () => {
  const policy = compileRetryPolicy({ schedule: ["1s", "2s"], maxAttempts: 5, window: "4s" });
  assert.deepEqual(afterFailure(policy, 1, 0), { kind: "retry", delayMs: 1000 });
  assert.deepEqual(afterFailure(policy, 3, 1000), { kind: "retry", delayMs: 2000 });
  assert.equal(afterFailure(policy, 3, 3000).kind, "dead");
  assert.equal(afterFailure(policy, 5, 0).kind, "dead");
});

test("Retry-After is honoured but bounded by the schedule's longest step", () => {
  const policy = compileRetryPolicy({ schedule: ["1s", "10s"] });
  assert.deepEqual(afterFailure(policy, 1, 0, 5000), { kind: "retry", delayMs: 5000 });
  assert.deepEqual(afterFailure(policy, 1, 0, 3_600_000), { kind: "retry", delayMs: 10_000 });
  assert.equal(parseRetryAfter("7"), 7000);
  assert.equal(parseRetryAfter(new Date(Date.now() + 60_000).toUTCString())! > 58_000, true);
  assert.equal(parseRetryAfter("soon"), undefined);
});

test("a bad retry option names its field", () => {
  assert.throws(
    () => compileRetryPolicy({ schedule: ["1s", "fast"] }),
    (e: RetryPolicyError) => e.field === "retry.schedule[1]",
  );
  assert.throws(
    () => compileRetryPolicy({ window: "later" }),
    (e: RetryPolicyError) => e.field === "retry.window",
  );
  assert.throws(
    () => compileRetryPolicy({ schedule: [], maxAttempts: 2 }),
    (e: RetryPolicyError) => e.field === "retry.schedule",
  );
});

test("canonical JSON gives equal content one spelling", () => {
  assert.equal(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] }), canonicalJson({ a: [{ c: 3, d: 2 }], b: 1 }));
  assert.notEqual(canonicalJson({ a: 1 }), canonicalJson({ a: "1" }));
});

test("endpoint URLs must be http(s) and out of refused networks", () => {
  const check = compileEndpointCheck({ allow: [], deny: ["10.0.0.0/8"] });
  assert.equal(check("http://127.0.0.1:9000/hook", "url"), "http://127.0.0.1:9000/hook");
  const field = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return (e as TidingsError).field;
    }
    return "accepted";
  };
  assert.equal(
    field(() => check("ftp://example.com/x", "endpoint.url")),
    "endpoint.url",
  );
  assert.equal(
    field(() => check("not a url", "endpoint.url")),
    "endpoint.url",
  );
  assert.equal(
    field(() => check("http://169.254.169.254/latest/meta-data", "endpoint.url")),
    "endpoint.url",
  );
  assert.equal(
    field(() => check("http://metadata.google.internal/", "endpoint.url")),
    "endpoint.url",
  );
  assert.equal(
    field(() => check("http://10.1.2.3/", "endpoint.url")),
    "endpoint.url",
  );
  const allowMetadata = compileEndpointCheck({ allow: ["169.254.169.254/32"], deny: [] });
  assert.equal(
    field(() => allowMetadata("http://169.254.169.254/", "u")),
    "accepted",
  );
  assert.equal(
    field(() => allowMetadata("http://127.0.0.1/", "u")),
    "u",
  );
});

test("sign-in limiter: 10 failures in the window block an address until the window ends; a success clears it", () => {
  const limiter = new SignInLimiter(10, 60_000);
  const t0 = 1_000_000;
  for (let i = 0; i < 9; i++) limiter.failed("a", t0 + i);
  assert.equal(limiter.retryAfterMs("a", t0 + 10), 0);
  limiter.failed("a", t0 + 10);
  assert.equal(limiter.retryAfterMs("a", t0 + 20), 60_000 - 20);
  assert.equal(limiter.retryAfterMs("b", t0 + 20), 0, "other addresses are not affected");
  assert.equal(limiter.retryAfterMs("a", t0 + 60_000), 0, "the window ended");
  limiter.failed("c", t0);
  limiter.succeeded("c");
  for (let i = 0; i < 9; i++) limiter.failed("c", t0 + i);
  assert.equal(limiter.retryAfterMs("c", t0 + 10), 0, "a success started the count again");
  const small = new SignInLimiter(1, 60_000, 3);
  for (const address of ["1", "2", "3", "4", "5"]) small.failed(address, t0);
  assert.equal(small.retryAfterMs("5", t0), 60_000, "the newest is still tracked when the table is full");
});
