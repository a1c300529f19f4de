// Builds the publishable packages, @tidings/sdk and @tidings/server, and packs each with
// `npm pack`: JavaScript (ESM, bundled per entry point by esbuild, the SQL inlined), declarations
// (tsc), a README, the LICENSE, and a package.json whose `exports` point at them.
//
// The workspace's own package.json files keep pointing at the TypeScript sources: the tests and
// the demos import them through tsx, with no build step. npm has no way to publish other
// `exports` than the ones in package.json (its publishConfig does not cover them), so the
// published manifest is written here, from the workspace's, into a staging folder per package,
// and that folder is what is packed (and what `npm publish <folder>` would publish).
//
// usage: node scripts/pack.mjs [--out <dir>]   (default: dist/ at the repository root)
//   <dir>/sdk/, <dir>/server/: the staged packages; <dir>/tidings-sdk-<v>.tgz, <dir>/tidings-server-<v>.tgz
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { inlineSql } from "./inlineSql.mjs";

const root = fileURLToPath(new URL("../", import.meta.url));
const at = process.argv.indexOf("--out");
const out = resolve(at > 0 ? process.argv[at + 1] : `${root}dist`);
const started = performance.now();
const readJson = (path) => JSON.parse(readFileSync(path, "utf8"));
const rootManifest = readJson(`${root}package.json`);

/** `./src/outbox/x.ts` → `outbox/x`: where an entry's JavaScript and declarations land under dist/. */
const distName = (source) => source.replace(/^\.\/src\//, "").replace(/\.ts$/, "");
const distExport = (source) => ({ types: `./dist/${distName(source)}.d.ts`, default: `./dist/${distName(source)}.js` });

const sdkSource = readJson(`${root}packages/sdk/package.json`);
const serverSource = readJson(`${root}packages/server/package.json`);

const PACKAGES = [
  {
    dir: "sdk",
    source: sdkSource,
    // sql/: for people who create the tables themselves (README); the code carries its own copy.
    copy: ["sql"],
    entries: Object.values(sdkSource.exports).filter((path) => path.endsWith(".ts")),
    manifest: (m) => ({
      ...common(m),
      exports: Object.fromEntries(Object.entries(m.exports).map(([key, path]) => [key, path.endsWith(".ts") ? distExport(path) : path])),
      files: ["dist", "sql"],
      dependencies: m.dependencies,
      peerDependencies: m.peerDependencies,
      peerDependenciesMeta: m.peerDependenciesMeta,
    }),
  },
  {
    dir: "server",
    source: serverSource,
    // web/: the console's files, served from the package root (src/paths.ts).
    copy: ["web"],
    entries: [serverSource.exports["."], "./src/cli.ts"],
    bin: "cli",
    manifest: (m) => ({
      ...common(m),
      exports: { ".": distExport(m.exports["."]), "./package.json": "./package.json" },
      bin: { tidings: "./dist/cli.js" },
      files: ["dist", "web"],
      // The SDK as published beside it (the workspace pins the exact version).
      dependencies: { ...m.dependencies, "@tidings/sdk": `^${sdkSource.version}` },
    }),
  },
];

function common(m) {
  return {
    name: m.name,
    version: m.version,
    description: m.description,
    keywords: m.keywords,
    license: m.license ?? rootManifest.license,
    type: "module",
    engines: rootManifest.engines,
  };
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

// Declarations of both packages in one tsc run (the server's refer to the SDK's by its name).
// noCheck: the workspace's `npm run typecheck` checks these sources; here tsc only writes
// declarations (8 s instead of 19). The server's http/schemas.ts holds TypeBox constants whose
// types cannot be named in a declaration file (TS4023); they are not part of the package's
// public types (its index), so that file alone is left without one.
const types = join(out, ".types");
const tsconfig = join(out, "tsconfig.types.json");
writeFileSync(
  tsconfig,
  JSON.stringify({
    extends: `${root}tsconfig.json`,
    compilerOptions: {
      noEmit: false,
      declaration: true,
      emitDeclarationOnly: true,
      noCheck: true,
      rootDir: `${root}packages`,
      outDir: types,
      typeRoots: [`${root}node_modules/@types`],
    },
    include: PACKAGES.map((p) => `${root}packages/${p.dir}/src`),
  }),
);
const tsc = spawnSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, "-p", tsconfig], { cwd: root, encoding: "utf8" });
const tscErrors = tsc.stdout
  .split("\n")
  .filter((line) => /error TS/.test(line) && !/^packages\/server\/src\/http\/schemas\.ts\(\d+,\d+\): error TS4023/.test(line));
if (tsc.status !== 0 && (tscErrors.length || !tsc.stdout)) {
  console.error(tsc.stdout, tsc.stderr);
  process.exit(1);
}

for (const pkg of PACKAGES) {
  const stage = join(out, pkg.dir);
  const dist = join(stage, "dist");
  await build({
    entryPoints: pkg.entries.map((entry) => ({ in: `${root}packages/${pkg.dir}/${entry}`, out: distName(entry) })),
    outdir: dist,
    bundle: true,
    splitting: true,
    // Chunks beside the entries: every module then sits one level below the package root, where
    // the server finds its console's files (src/paths.ts).
    chunkNames: "[name]-[hash]",
    format: "esm",
    platform: "node",
    target: "node20",
    // Every package, the SDK included for the server, stays a dependency: only our files are bundled.
    packages: "external",
    plugins: [inlineSql],
    logLevel: "warning",
  });
  if (pkg.bin) {
    const bin = join(dist, `${pkg.bin}.js`);
    writeFileSync(bin, `#!/usr/bin/env node\n${readFileSync(bin, "utf8")}`);
    chmodSync(bin, 0o755);
  }
  // The declarations, with the sources' `.ts` specifiers made the `.js` files they stand for.
  for (const file of walk(join(types, pkg.dir, "src"))) {
    const target = join(dist, file.slice(join(types, pkg.dir, "src").length));
    mkdirSync(resolve(target, ".."), { recursive: true });
    const text = readFileSync(file, "utf8").replace(/((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+)\.ts(["'])/g, "$1$2.js$3");
    writeFileSync(target, text);
  }
  for (const folder of pkg.copy) cpSync(`${root}packages/${pkg.dir}/${folder}`, join(stage, folder), { recursive: true });
  cpSync(`${root}packages/${pkg.dir}/README.md`, join(stage, "README.md"));
  cpSync(`${root}LICENSE`, join(stage, "LICENSE"));
  writeFileSync(join(stage, "package.json"), `${JSON.stringify(pkg.manifest(pkg.source), null, 2)}\n`);
  execFileSync("npm", ["pack", "--silent", "--pack-destination", out], { cwd: stage, stdio: ["ignore", "ignore", "inherit"] });
}
rmSync(types, { recursive: true, force: true });
rmSync(tsconfig, { force: true });

if (!process.argv.includes("--quiet")) {
  const tarballs = readdirSync(out).filter((f) => f.endsWith(".tgz"));
  console.log(`packed ${tarballs.map((f) => join(out, f)).join(", ")} in ${Math.round(performance.now() - started)} ms`);
}

function* walk(dir) {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) yield* walk(path);
    else yield path;
  }
}
