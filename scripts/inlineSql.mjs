// An esbuild plugin: the modules that read the packages' SQL files from the sources
// (packages/sdk/src/schema/sqlFiles.ts, packages/server/src/store/migrationFiles.ts) are replaced
// in a build by modules holding the files' text. Built code then reads no files for its SQL, so
// it works wherever it is installed or bundled again (a path relative to a module breaks as soon
// as a program bundles the SDK into one file of its own).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));
/** Each module, by its path, and the folder it reads: its SQL files, or one subfolder of them per argument. */
const SQL_MODULES = new Map([
  [`${root}packages/sdk/src/schema/sqlFiles.ts`, `${root}packages/sdk/sql/`],
  [`${root}packages/server/src/store/migrationFiles.ts`, `${root}packages/server/src/store/migrations/`],
]);

const filesOf = (dir) =>
  readdirSync(dir)
    .filter((file) => file.endsWith(".sql"))
    .sort()
    .map((file) => ({ file, text: readFileSync(`${dir}${file}`, "utf8") }));

/** The replacement module: `sqlFiles(folder?)` answers what the source module would have read. */
function inlined(dir) {
  const folders = { "": filesOf(dir) };
  for (const entry of readdirSync(dir)) if (statSync(`${dir}${entry}`).isDirectory()) folders[entry] = filesOf(`${dir}${entry}/`);
  return `const FOLDERS = ${JSON.stringify(folders)};\nexport function sqlFiles(folder = "") {\n  return (FOLDERS[folder] ?? []).map((f) => ({ ...f }));\n}\n`;
}

export const inlineSql = {
  name: "inline-sql",
  setup(b) {
    b.onLoad({ filter: /(sqlFiles|migrationFiles)\.ts$/ }, (args) => {
      const dir = SQL_MODULES.get(args.path);
      return dir ? { contents: inlined(dir), loader: "js", resolveDir: dir } : undefined;
    });
  },
};
