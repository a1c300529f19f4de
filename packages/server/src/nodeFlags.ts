/**
 * The Node flags `npm start` runs the service with (keep the `start` script in the root
 * package.json in step): a 128 MB old generation keeps its RSS under 200 MB under load, where
 * V8 would otherwise grow the heap to follow the allocation rate and keep it (measured in
 * docs/performance.md). Tests and the benchmark start the service with the same flags.
 */
export const SERVE_NODE_FLAGS: readonly string[] = ["--max-old-space-size=128"];
