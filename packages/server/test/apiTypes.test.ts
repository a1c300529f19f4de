// The SDK's API types (packages/sdk/src/client/openapi.ts) are generated from the service's
// OpenAPI document; these tests fail when a route's schema changed and they were not generated
// again, and when the SDK's list of error codes is not the service's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { relative } from "node:path";
import { SERVICE_ERROR_CODES, type ApiError, type ServiceErrorCode } from "@tidings/sdk";
import { API_TYPES_FILE, generateApiTypes } from "../../../scripts/genApi.ts";
import { ERROR_CODES } from "../src/http/errors.ts";

/** The first line at which two texts differ, both sides shown. */
function firstDifference(committed: string, current: string): string {
  const a = committed.split("\n");
  const b = current.split("\n");
  const at = a.findIndex((line, i) => line !== b[i]);
  const line = at === -1 ? a.length : at;
  return `line ${line + 1}: committed ${JSON.stringify(a[line] ?? "(end)")}, the routes give ${JSON.stringify(b[line] ?? "(end)")}`;
}

test("the SDK's committed API types are those the routes describe now", async () => {
  const committed = await readFile(API_TYPES_FILE, "utf8");
  const current = await generateApiTypes();
  if (committed !== current) {
    const file = relative(process.cwd(), API_TYPES_FILE);
    assert.fail(`${file} is out of date with the routes' schemas (${firstDifference(committed, current)}): run npm run gen:api`);
  }
});

/** True when A and B are the same set of string literals. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

test("the SDK knows every error code the service answers with, and no other", () => {
  // At compile time: the SDK's codes are those of the generated document's error body.
  const documented: Same<ApiError["error"]["code"], ServiceErrorCode> = true;
  assert.ok(documented);
  assert.deepEqual([...SERVICE_ERROR_CODES].sort(), [...ERROR_CODES].sort());
});
