// What each folder may import (`npm run check:layers`, run first by `npm test`). The reasons,
// and the picture they draw, are in docs/architecture.md ("What each folder may import").
const SERVER = "^packages/server/src/";

/** @type {import("dependency-cruiser").IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "A loop of imports, type-only ones included, means two modules that cannot be understood or moved apart.",
      severity: "error",
      from: { path: "^packages/(server|sdk)/src/" },
      to: { circular: true },
    },
    {
      name: "domain-is-pure",
      comment: "domain/ is pure code: it imports only domain/ and Node's built-in modules (no package, no I/O of ours).",
      severity: "error",
      from: { path: `${SERVER}domain/` },
      to: { pathNot: `${SERVER}domain/`, dependencyTypesNot: ["core"] },
    },
    {
      name: "store-on-domain-only",
      comment: "store/ holds the SQL: it imports store/, domain/, pg and Node's built-ins; paths.ts too, to find the migrations from the package root.",
      severity: "error",
      from: { path: `${SERVER}store/` },
      to: {
        pathNot: [`${SERVER}(store|domain)/`, `${SERVER}paths\\.ts$`, "^node_modules/(pg|@types/pg)/"],
        dependencyTypesNot: ["core"],
      },
    },
    {
      name: "transports-on-domain-only",
      comment: "transports/ send one attempt; of our code they import only transports/ and domain/ (never the store).",
      severity: "error",
      from: { path: `${SERVER}transports/` },
      to: { path: SERVER, pathNot: `${SERVER}(transports|domain)/` },
    },
    {
      name: "background-parts-not-on-http",
      comment: "The delivery loop, check-backs, publishing and the workers run without a request: they never import http/.",
      severity: "error",
      from: { path: `${SERVER}(delivery|checkBack|publish|workers)/` },
      to: { path: `${SERVER}http/` },
    },
    {
      name: "runtime-only-from-entry-points",
      comment: "runtime/ wires the service together: only the entry points (cli.ts, index.ts) and runtime/ itself import it.",
      severity: "error",
      from: { path: SERVER, pathNot: [`${SERVER}runtime/`, `${SERVER}(cli|index)\\.ts$`] },
      to: { path: `${SERVER}runtime/` },
    },
    {
      name: "service-only-from-entry-points",
      comment: "runtime/service.ts builds and starts every part; only cli.ts and index.ts start it.",
      severity: "error",
      from: { path: SERVER, pathNot: `${SERVER}(cli|index)\\.ts$` },
      to: { path: `${SERVER}runtime/service\\.ts$` },
    },
    {
      name: "routes-use-store-operations",
      comment: "http/routes/ call named store operations; they never reach pg or store/db.ts themselves.",
      severity: "error",
      from: { path: `${SERVER}http/routes/` },
      to: { path: ["^node_modules/(pg|@types/pg)/", `${SERVER}store/db\\.ts$`] },
    },
    {
      name: "sdk-not-on-server",
      comment: "The SDK runs in users' processes: it never imports the server.",
      severity: "error",
      from: { path: "^packages/sdk/src/" },
      to: { path: "^packages/server/" },
    },
    {
      name: "server-uses-sdk-as-a-package",
      comment: "The server uses the SDK only through its package name (@tidings/sdk, for `tidings relay`), never by a path into its sources.",
      severity: "error",
      from: { path: "^packages/server/src/" },
      to: { path: "^packages/sdk/", dependencyTypes: ["local"] },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // Type-only imports count: a loop through types is still a loop to read and to move.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    // Resolve packages through their `exports` (how @tidings/sdk/relay-cli is found).
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default"],
      mainFields: ["module", "main", "types"],
    },
  },
};
