import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { maskSlackUrl, passes } from "../src/domain/channel.ts";
import { buildNotification, consoleLink, LISTED_EVENTS, rateLimitWaitMs, retryDelayMs, type AlertEvent } from "../src/domain/notification.ts";

const event = (id: number, condition = "delivery_dead", kind = "opened"): AlertEvent => ({
  id,
  tx: "1000",
  alertId: 100 + id,
  event: kind,
  condition,
  subject: `subscription s${id}`,
  summary: `summary ${id}`,
  nextStep: `step ${id}`,
  link: `#/subscriptions/s${id}`,
  at: new Date("2026-12-05T10:00:00Z"),
});

describe("notifications (pure)", () => {
  test("one event is told as it is, with its next step and an absolute console link", () => {
    const n = buildNotification(7, [event(1)], "https://tidings.example.test/console/");
    assert.equal(n.title, "[Tidings] delivery_dead opened: subscription s1");
    assert.equal(n.text, "summary 1\nNext step: step 1\nOpen: https://tidings.example.test/console/#/subscriptions/s1\n");
    assert.equal(n.id, "tidings-channel-7-1-1");
  });

  test("several events are one digest with counts per condition and event, listing the first 20", () => {
    const events = [...Array.from({ length: 22 }, (_, i) => event(i + 1)), event(23, "circuit_open"), event(24, "circuit_open", "resolved")];
    const n = buildNotification(7, events, "http://127.0.0.1:7400/console/");
    assert.deepEqual(n.counts, [
      { condition: "delivery_dead", event: "opened", count: 22 },
      { condition: "circuit_open", event: "opened", count: 1 },
      { condition: "circuit_open", event: "resolved", count: 1 },
    ]);
    assert.equal(n.title, "[Tidings] 24 alert events: 22 delivery_dead opened, 1 circuit_open opened, 1 circuit_open resolved");
    assert.equal((n.text.match(/Next step:/g) ?? []).length, LISTED_EVENTS);
    assert.match(n.text, /…and 4 more: http:\/\/127\.0\.0\.1:7400\/console\/#\/overview\n$/);
    assert.equal(n.events.length, 24);
    assert.equal(n.id, "tidings-channel-7-1-24");
  });

  test("links join the console's URL whatever its spelling", () => {
    assert.equal(consoleLink("https://x.test/console/", "#/a"), "https://x.test/console/#/a");
    assert.equal(consoleLink("https://x.test/console#/old", "/a"), "https://x.test/console#/a");
  });

  test("the rate limit waits for the oldest of the last minute's notifications to leave the window", () => {
    const now = 1_000_000;
    const at = (msAgo: number) => new Date(now - msAgo);
    assert.equal(rateLimitWaitMs([], 1, now), 0);
    assert.equal(rateLimitWaitMs([at(10_000)], 2, now), 0);
    assert.equal(rateLimitWaitMs([at(10_000)], 1, now), 50_000);
    assert.equal(rateLimitWaitMs([at(50_000), at(10_000), at(70_000)], 2, now), 10_000);
  });

  test("retries follow the schedule, its last step repeating", () => {
    assert.deepEqual(
      [1, 2, 3, 4, 9].map((n) => retryDelayMs([10, 20, 30], n)),
      [10, 20, 30, 30, 30],
    );
  });

  test("filters and masks", () => {
    assert.equal(passes({ conditions: null, events: null }, { condition: "x", event: "opened" }), true);
    assert.equal(passes({ conditions: ["x"], events: ["resolved"] }, { condition: "x", event: "opened" }), false);
    assert.equal(maskSlackUrl("https://hooks.example.test/services/T1/B2/secret"), "https://hooks.example.test/services/***");
    assert.equal(maskSlackUrl("not a url"), "***");
  });
});
