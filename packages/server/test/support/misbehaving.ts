import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { bundled } from "@tidings/testkit/bundle";

const SCRIPT = fileURLToPath(new URL("./misbehavingReceiver.ts", import.meta.url));

/** The misbehaving receiver process (misbehavingReceiver.ts) and what it was asked. */
export interface MisbehavingReceiver {
  readonly url: string;
  readonly child: ChildProcess;
  /** Requests per `<path> <webhook-id>`. */
  readonly counts: Map<string, number>;
  count(path: string, id: string): number;
  /** Requests whose path starts with `prefix`. */
  total(prefix: string): number;
  stop(): Promise<void>;
}

export async function startMisbehavingReceiver(): Promise<MisbehavingReceiver> {
  const child = spawn(process.execPath, [bundled(SCRIPT)], { stdio: ["ignore", "pipe", "inherit"] });
  const counts = new Map<string, number>();
  let buffered = "";
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the misbehaving receiver did not start in 20 s")), 20_000);
    child.once("exit", (code) => reject(new Error(`the misbehaving receiver exited with ${code}`)));
    child.stdout!.on("data", (data: Buffer) => {
      buffered += data.toString();
      for (let end = buffered.indexOf("\n"); end >= 0; end = buffered.indexOf("\n")) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 1);
        const listening = /^listening (\d+)$/.exec(line);
        if (listening) {
          clearTimeout(timer);
          resolve(Number(listening[1]));
        }
        const request = /^request (\S+) (\S+)$/.exec(line);
        if (request) counts.set(`${request[1]} ${request[2]}`, (counts.get(`${request[1]} ${request[2]}`) ?? 0) + 1);
      }
    });
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    counts,
    count: (path, id) => counts.get(`${path} ${id}`) ?? 0,
    total: (prefix) => [...counts].filter(([key]) => key.startsWith(prefix)).reduce((n, [, c]) => n + c, 0),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}
