// Runs every test file, two at a time (TIDINGS_TEST_CONCURRENCY), the longest first: the short
// ones fill in beside them and the run ends when the last long one does, instead of one long file
// running alone at the end. The run is bound by CPU on two cores: more at a time is not faster.
// Arguments (test files) run just those, in the order given.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";

const LONGEST_FIRST = [
  "packages/server/test/crash.test.ts",
  "packages/server/test/brokers.test.ts",
  "packages/sdk/test/crashMatrix.test.ts",
  "packages/server/test/benchSmoke.test.ts",
  "packages/server/test/console.test.ts",
  "packages/sdk/test/recharge.test.ts",
  "packages/server/test/faults.test.ts",
];

const all = ["packages/sdk/test", "packages/server/test"].flatMap((dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith(".test.ts"))
    .sort()
    .map((f) => `${dir}/${f}`),
);
const files =
  process.argv.length > 2 ? process.argv.slice(2) : [...LONGEST_FIRST.filter((f) => all.includes(f)), ...all.filter((f) => !LONGEST_FIRST.includes(f))];
const run = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-force-exit", `--test-concurrency=${process.env.TIDINGS_TEST_CONCURRENCY ?? 2}`, "--test-timeout=300000", ...files],
  {
    stdio: "inherit",
  },
);
process.exit(run.status ?? 1);
