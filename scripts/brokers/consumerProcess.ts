// Runs scripts/brokers/consumer.ts as a child process and tallies what it reports.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ConsumerSpec } from "./consumerSpec.ts";
import { bundled } from "@tidings/testkit/bundle";

const SCRIPT = fileURLToPath(new URL("./consumer.ts", import.meta.url));

/** Counts over every life of the consumer (they survive its SIGKILL: lines are out before acks). */
export interface ConsumerTally {
  applied: number;
  duplicates: number;
  failed: number;
  /** Deliveries the broker flagged as redelivered. */
  redeliveries: number;
  disconnects: number;
  /** The last "stats" line (benchmarks). */
  stats: Record<string, number> | null;
}

export interface ConsumerProcess {
  readonly child: ChildProcess;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function newTally(): ConsumerTally {
  return { applied: 0, duplicates: 0, failed: 0, redeliveries: 0, disconnects: 0, stats: null };
}

/** Starts a consumer and waits for its "ready"; its lines are added to `tally`. */
export async function spawnConsumer(spec: ConsumerSpec, tally: ConsumerTally, timeoutMs = 60_000): Promise<ConsumerProcess> {
  const child = spawn(process.execPath, [bundled(SCRIPT), JSON.stringify(spec)], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  let partial = "";
  let ready = false;
  const onReady: (() => void)[] = [];
  child.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  child.stdout!.on("data", (d: Buffer) => {
    const lines = (partial + d.toString()).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      const [what, flag] = line.split(" ", 2);
      if (what === "applied") tally.applied++;
      else if (what === "duplicate") tally.duplicates++;
      else if (what === "failed") tally.failed++;
      else if (what === "disconnected") tally.disconnects++;
      else if (what === "stats") tally.stats = JSON.parse(line.slice(6)) as Record<string, number>;
      else if (what === "ready") {
        ready = true;
        for (const f of onReady.splice(0)) f();
      }
      if ((what === "applied" || what === "duplicate" || what === "failed") && flag === "1") tally.redeliveries++;
    }
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumer not ready after ${timeoutMs} ms:\n${err}`)), timeoutMs);
    onReady.push(() => {
      clearTimeout(timer);
      resolve();
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      if (!ready) reject(new Error(`consumer exited with ${code} before it was ready:\n${err}`));
    });
  });
  return {
    child,
    output: () => err,
    async kill(signal = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
