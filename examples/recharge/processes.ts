import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../../packages/server/src/cli.ts", import.meta.url));

export interface Child {
  readonly process: ChildProcess;
  /** The first capture group of the ready line. */
  readonly ready: string;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Runs `tidings <args>` as a real child process and waits for the line matching `readyLine`. */
export async function runTidings(args: string[], env: Record<string, string>, readyLine: RegExp, timeoutMs = 30_000): Promise<Child> {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const ready = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tidings ${args[0]} did not start in ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const onData = () => {
      const match = readyLine.exec(out);
      if (!match) return;
      clearTimeout(timer);
      child.stdout!.off("data", onData);
      resolve(match[1] ?? match[0]);
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`tidings ${args[0]} exited (${code ?? signal}) before it started:\n${out}`));
    });
  });
  return {
    process: child,
    ready,
    output: () => out,
    async kill(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
