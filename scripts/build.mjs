// Bundles the service into packages/server/dist/tidings.mjs: what `npm start` runs. Compiled
// JavaScript spares the service tsx's loader thread (~35 MB of RSS), which the heap gets instead.
// The SDK's sources (a workspace package of TypeScript files) are bundled in; every other
// package stays in node_modules. Files read at run time (migrations, console assets, the SDK's
// SQL) are found from the package roots, not from the bundle.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));
const started = performance.now();
// --outfile <path>: another file in packages/server/dist (the tests build one of their own, so
// concurrent test processes never read a bundle another is writing).
const at = process.argv.indexOf("--outfile");
const outfile = at > 0 ? process.argv[at + 1] : `${root}packages/server/dist/tidings.mjs`;

await build({
  entryPoints: [`${root}packages/server/src/cli.ts`],
  outfile,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  logLevel: "warning",
  plugins: [
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
