// Bundles the service into packages/server/dist/tidings.mjs: what `npm start` runs. Compiled
// JavaScript spares the service tsx's loader thread (~35 MB of RSS), which the heap gets instead.
// The SDK's sources (a workspace package of TypeScript files) are bundled in; every other
// package stays in node_modules. The SQL (the service's migrations, the SDK's tables) is inlined
// (scripts/inlineSql.mjs); the console's files are found from the package root.
import { build } from "esbuild";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { inlineSql } from "./inlineSql.mjs";

const root = fileURLToPath(new URL("../", import.meta.url));
const started = performance.now();
// For the tests: --outfile <path> writes another file (each test process builds its own, so none
// reads a bundle another is writing); --entry <file> bundles another script the same way (a
// process a test runs). The service's bundle must stay in packages/server/dist: it finds its
// files from there.
const option = (name) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
};
const outfile = option("--outfile") ?? `${root}packages/server/dist/tidings.mjs`;
const entry = option("--entry") ?? `${root}packages/server/src/cli.ts`;

// Split at the dynamic imports: a command loads only its own modules and packages (`tidings
// --help` or `tidings send` none of the service's: 0.15 s instead of 0.65 s). The chunks sit
// beside the entry (`tidings-<chunk>-<hash>.mjs`), named after it, so builds of other entries in the same folder (one per test
// process) never share or overwrite one; every module stays one level below the package root.
const name = basename(outfile).replace(/\.mjs$/, "");
// The chunks of an earlier build of this entry are replaced, not left to pile up.
if (existsSync(dirname(outfile))) {
  for (const file of readdirSync(dirname(outfile))) if (file.startsWith(`${name}-`)) rmSync(join(dirname(outfile), file), { force: true });
}
await build({
  entryPoints: [{ in: entry, out: name }],
  outdir: dirname(outfile),
  outExtension: { ".js": ".mjs" },
  splitting: true,
  chunkNames: `${name}-[name]-[hash]`,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  logLevel: "warning",
  plugins: [
    inlineSql,
    {
      name: "external-node-modules",
      setup(b) {
        // Bare specifiers are packages: keep them external, except our own workspace packages.
        b.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith("@tidings/") ? undefined : { path: args.path, external: true }));
      },
    },
  ],
});

if (!process.argv.includes("--quiet")) console.log(`built ${outfile} in ${Math.round(performance.now() - started)} ms`);
