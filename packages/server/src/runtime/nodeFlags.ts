/**
 * The Node flags `npm start` runs the service with (keep the `start` script in the root
 * package.json in step): a 128 MB old generation keeps its RSS under 200 MB under load, where
 * V8 would otherwise grow the heap to follow the allocation rate and keep it; a 32 MB young
 * generation semi-space lets the short-lived garbage of each request die young (service CPU per
 * delivery −15%). Measured in docs/performance.md. The benchmark runs the bundle with the same flags, the tests run the
 * sources (through tsx) with them.
 */
export const SERVE_NODE_FLAGS: readonly string[] = ["--max-old-space-size=128", "--max-semi-space-size=32"];
