// The READMEs' complete programs compile against the SDK as it is: every code block opened
// with ```ts file=<name> (or ```js file=<name>) in README.md and packages/sdk/README.md is
// written out as that file and type-checked with the project's compiler settings, strict.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { test } from "node:test";
import ts from "typescript";

const ROOT = resolve(import.meta.dirname, "../../..");
const READMES = ["README.md", "packages/sdk/README.md"];

interface Snippet {
  readme: string;
  line: number;
  file: string;
  code: string;
}

/** The blocks of a README that name their file, with the line each starts on. */
export function snippetsOf(readme: string, text: string): Snippet[] {
  const found: Snippet[] = [];
  for (const m of text.matchAll(/^```(ts|js) file=(\S+)\n([\s\S]*?)^```$/gm)) {
    found.push({ readme, line: text.slice(0, m.index).split("\n").length, file: m[2]!, code: m[3]! });
  }
  return found;
}

test("the READMEs' complete programs compile against the SDK", async () => {
  const snippets = (await Promise.all(READMES.map(async (r) => snippetsOf(r, await readFile(join(ROOT, r), "utf8"))))).flat();
  assert.ok(snippets.filter((s) => s.readme === "README.md").length >= 2, "README.md has its quickstart's programs");
  assert.ok(
    snippets.some((s) => s.readme !== "README.md"),
    "the SDK's README has its program",
  );
  // Inside the repository, so that @tidings/sdk, pg and their types resolve as in a user's project.
  const dir = await mkdtemp(join(ROOT, "packages/sdk/.readme-"));
  try {
    const where = new Map<string, Snippet>();
    for (const [i, s] of snippets.entries()) {
      const path = join(dir, `${i}-${s.file}`);
      where.set(path, s);
      await writeFile(path, s.code);
    }
    await writeFile(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    const program = ts.createProgram([...where.keys()], {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      noUncheckedIndexedAccess: true,
      esModuleInterop: true,
      skipLibCheck: true,
      allowImportingTsExtensions: true,
      allowJs: true,
      checkJs: true,
      noEmit: true,
      types: ["node"],
    });
    const problems = ts.getPreEmitDiagnostics(program).map((d) => {
      const s = d.file ? where.get(resolve(d.file.fileName)) : undefined;
      const at =
        s && d.start !== undefined ? `${s.readme}:${s.line + d.file!.getLineAndCharacterOfPosition(d.start).line + 1} (${s.file})` : (d.file?.fileName ?? "");
      return `${at}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
    });
    assert.deepEqual(problems, [], "every README program compiles");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
