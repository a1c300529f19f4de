// Bundles the service into packages/server/dist/tidings.mjs: what `npm start` runs. Compiled
// JavaScript spares the service tsx's loader thread (~35 MB of RSS), which the heap gets instead.
// The SDK's sources (a workspace package of TypeScript files) are bundled in; every other
// package stays in node_modules. The SQL (the service's migrations, the SDK's tables) is inlined
// (scripts/inlineSql.mjs); the console's files are found from the package root.
import { build } from "esbuild";
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

await build({
  entryPoints: [entry],
  outfile,
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
