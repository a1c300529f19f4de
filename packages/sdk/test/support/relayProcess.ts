import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../../../server/src/cli.ts", import.meta.url));

export interface RelayProcess {
  readonly child: ChildProcess;
  output(): string;
  /** SIGKILL by default: the process gets no chance to finish anything. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Runs `tidings relay` as a real child process, resolved once it says it is running. */
export async function spawnRelay(options: { databaseUrl: string; url: string; apiKey: string; args?: string[] }, timeoutMs = 20_000): Promise<RelayProcess> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", CLI, "relay", "--database-url", options.databaseUrl, "--url", options.url, "--api-key", options.apiKey, ...(options.args ?? [])],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env } },
  );
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`relay did not start in ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const onData = () => {
      if (out.includes("tidings relay is running")) {
        clearTimeout(timer);
        child.stdout!.off("data", onData);
        resolve();
      }
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`relay exited with ${code} before it started:\n${out}`));
    });
  });
  return {
    child,
    output: () => out,
    async kill(signal = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
