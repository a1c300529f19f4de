import { test } from "node:test";
import assert from "node:assert/strict";
import { targetOfMany } from "../src/domain/audit.ts";

test("an action on several objects names them in its target, each once, as many as fit in 300 characters, then how many more", () => {
  assert.equal(targetOfMany("message", ["a-1"]), "message/a-1", "one alone: the target a single call records");
  assert.equal(targetOfMany("message", ["a-1", "a-2", "a-1"]), "message/a-1, message/a-2");
  assert.equal(targetOfMany("message", []), null);
  const ids = Array.from({ length: 1000 }, (_, i) => `order-${String(i).padStart(40, "0")}`);
  const target = targetOfMany("message", ids)!;
  assert.ok(target.length <= 400, `${target.length} characters: more than the audit filter takes`);
  const named = target.split(" and ")[0]!.split(", ");
  assert.deepEqual(
    named,
    ids.slice(0, named.length).map((id) => `message/${id}`),
  );
  assert.ok(named.length >= 2);
  assert.ok(target.endsWith(` and ${1000 - named.length} more`), target);
  const long = `x${"y".repeat(199)}`;
  assert.equal(targetOfMany("message", [`shop/${long}`, `shop/${long}-2`]), `message/shop/${long} and 1 more`, "two long ids: the first, and one more");
});
