import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createConfig, lintFromString } from "@redocly/openapi-core";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { startTestService, type RunningService } from "@tidings/testkit/service";
import { buildApiDocument } from "../src/http/apiDocument.ts";

// The API's description is for other tools too: a standard linter (Redocly's recommended rules)
// finds nothing wrong with it, and a client generated from it by a standard generator compiles.

let database: TestDatabase;
let service: RunningService;
let document: string;

before(async () => {
  database = await createTestDatabase("openapi");
  service = await startTestService(database.url);
  document = await (await fetch(`${service.url}/openapi.json`)).text();
});
after(async () => {
  await service?.close();
  await database?.drop();
});

test("/openapi.json lints clean with Redocly's recommended rules", async () => {
  const problems = await lintFromString({
    source: document,
    absoluteRef: "openapi.json",
    config: await createConfig({ extends: ["recommended"] }),
  });
  const shown = problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? "?"}`);
  assert.deepEqual(shown, [], `${shown.length} problems`);
});

test("the document built without a database (what the SDK's types are generated from) is the one served", async () => {
  assert.deepEqual(await buildApiDocument(), JSON.parse(document));
});

test("every operation has a unique operationId", () => {
  const paths = JSON.parse(document).paths as Record<string, Record<string, { operationId?: string }>>;
  const ids = Object.values(paths).flatMap((ops) => Object.values(ops).map((op) => op.operationId));
  assert.ok(ids.length > 50, `${ids.length} operations`);
  assert.ok(
    ids.every((id) => typeof id === "string" && /^[a-z][A-Za-z0-9]*$/.test(id)),
    "each a camelCase identifier",
  );
  assert.equal(new Set(ids).size, ids.length, "no two alike");
});

test("a client generated from it by openapi-typescript compiles under strict TypeScript", async () => {
  const types = astToString(await openapiTS(JSON.parse(document)));
  const dir = await mkdtemp(join(tmpdir(), "tidings-openapi-"));
  try {
    const file = join(dir, "api.ts");
    // The generated types, and a use of them as a client would make.
    await writeFile(
      file,
      `${types}
type Created = paths["/v1/messages"]["post"]["responses"]["201"]["content"]["application/json"];
export const id = (m: Created): string => m.id;
`,
    );
    const program = ts.createProgram([file], { strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, skipLibCheck: true });
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    assert.deepEqual(diagnostics, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
