import { spawn, type ChildProcess } from "node:child_process";

export interface Child {
  readonly process: ChildProcess;
  /** The first capture group of the ready line. */
  readonly ready: string;
  output(): string;
  /** Resolves at the next line matching `pattern` (already printed ones count). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Runs `node --import tsx <script> <args>` as a real child process and waits for the line matching `readyLine`. */
export async function runScript(script: string, args: string[], env: Record<string, string>, readyLine: RegExp, timeoutMs = 30_000): Promise<Child> {
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let out = "";
  const listeners = new Set<() => void>();
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
    for (const l of listeners) l();
  });
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const waitFor = (pattern: RegExp, ms = timeoutMs) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const match = pattern.exec(out);
        if (!match) return;
        done();
        resolve(match);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${script}: no line matching ${pattern} in ${ms} ms:\n${out}`));
      }, ms);
      const onExit = (code: number | null, signal: string | null) => {
        done();
        reject(new Error(`${script} exited (${code ?? signal}) before printing ${pattern}:\n${out}`));
      };
      const done = () => {
        clearTimeout(timer);
        listeners.delete(check);
        child.off("exit", onExit);
      };
      listeners.add(check);
      child.once("exit", onExit);
      check();
    });
  const ready = await waitFor(readyLine);
  return {
    process: child,
    ready: ready[1] ?? ready[0],
    output: () => out,
    waitFor,
    async kill(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
