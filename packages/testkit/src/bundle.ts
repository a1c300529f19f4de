import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const BUILD = fileURLToPath(new URL("../../../scripts/build.mjs", import.meta.url));
/** Inside the repository, so the bundle's packages resolve from its node_modules. */
const CACHE = fileURLToPath(new URL("../../../node_modules/.cache/tidings-test/", import.meta.url));
const built = new Map<string, string>();

/**
 * A TypeScript script a test runs as a process, bundled to JavaScript once per test process
 * (well under a second; workspace packages bundled in, other packages left to node_modules).
 * It starts in about half the CPU time of tsx, which matters when a test starts dozens. The file
 * is this process's own, removed when it exits. `outfile` puts it elsewhere (the service's bundle
 * must sit in packages/server/dist).
 */
export function bundled(entry: string, outfile?: string): string {
  const known = built.get(entry);
  if (known) return known;
  const out = outfile ?? `${CACHE}${basename(entry).replace(/\.ts$/, "")}-${process.pid}.mjs`;
  mkdirSync(dirname(out), { recursive: true });
  const result = spawnSync(process.execPath, [BUILD, "--quiet", "--entry", entry, "--outfile", out], { stdio: "inherit" });
  if (result.status !== 0) throw new Error(`bundling ${entry} failed (exit ${result.status})`);
  process.once("exit", () => {
    // The entry, and the chunks built beside it (named after it: scripts/build.mjs).
    const chunks = `${basename(out).replace(/\.mjs$/, "")}-`;
    for (const file of [basename(out), `${basename(out)}.map`, ...readdirSync(dirname(out)).filter((f) => f.startsWith(chunks))]) {
      rmSync(join(dirname(out), file), { force: true });
    }
  });
  built.set(entry, out);
  return out;
}
