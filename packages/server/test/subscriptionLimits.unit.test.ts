import { test } from "node:test";
import assert from "node:assert/strict";
import { bucketTake, burstOf } from "../src/domain/subscriptionLimits.ts";

// How many deliveries a claim may take within a subscription's limits: no database, hand-built inputs.

test("a rate limit's bucket starts full at a fifth of a second's worth and refills at the rate", () => {
  assert.equal(burstOf(40), 8);
  assert.equal(burstOf(2), 1);
  assert.deepEqual(bucketTake({ rateLimit: 40, maxInFlight: null }, 500, null, null, 0), { n: 8, tokens: 8 });
  // 0.5 tokens left, 50 ms later: 2.5 → two may go.
  assert.deepEqual(bucketTake({ rateLimit: 40, maxInFlight: null }, 500, 0.5, 50, 0), { n: 2, tokens: 2.5 });
  // Never more than the bucket holds, however long it was idle.
  assert.equal(bucketTake({ rateLimit: 40, maxInFlight: null }, 500, 0, 60_000, 0).tokens, 8);
  assert.equal(bucketTake({ rateLimit: 40, maxInFlight: null }, 3, 0, 60_000, 0).n, 3);
});

test("maxInFlight counts what is leased now, and both limits together take the smaller", () => {
  assert.equal(bucketTake({ rateLimit: null, maxInFlight: 3 }, 500, null, null, 1).n, 2);
  assert.equal(bucketTake({ rateLimit: null, maxInFlight: 3 }, 500, null, null, 5).n, 0);
  assert.equal(bucketTake({ rateLimit: 40, maxInFlight: 3 }, 500, null, null, 0).n, 3);
  assert.equal(bucketTake({ rateLimit: 40, maxInFlight: 10 }, 500, 1.5, 0, 0).n, 1);
  assert.deepEqual(bucketTake({ rateLimit: null, maxInFlight: null }, 7, null, null, 100), { n: 7, tokens: null });
});
