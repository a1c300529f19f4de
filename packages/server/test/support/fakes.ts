import type { Logger } from "pino";
import { ResultWriter } from "../../src/delivery/resultWriter.ts";
import type { AttemptOutcome, AttemptResult } from "../../src/domain/delivery.ts";
import { waitFor } from "@tidings/testkit/wait";

/** A promise the test settles when it chooses: the fake operation it stands for "takes" exactly that long. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
  settled: boolean;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const d: Deferred<T> = {
    promise,
    settled: false,
    resolve(value) {
      d.settled = true;
      resolve(value);
    },
    reject(error) {
      d.settled = true;
      reject(error);
    },
  };
  return d;
}

export interface LogLine {
  level: "trace" | "debug" | "info" | "warn" | "error" | "fatal";
  fields: Record<string, unknown>;
  msg: string;
}

/** A logger that keeps its lines, for tests that assert what an operator would read. */
export function recordingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine["level"]) =>
    (fields: unknown, msg?: string): void => {
      if (typeof fields === "string") lines.push({ level, fields: {}, msg: fields });
      else lines.push({ level, fields: (fields ?? {}) as Record<string, unknown>, msg: msg ?? "" });
    };
  const log = {
    lines,
    level: "trace",
    trace: at("trace"),
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    fatal: at("fatal"),
    child: () => log,
  };
  return log as unknown as Logger & { lines: LogLine[] };
}

/**
 * Waits, polling every millisecond, for a condition the code under test reaches within a few
 * event-loop turns (well under 10 ms); the deadline only bounds a test whose condition never comes.
 */
export const until = <T>(what: string, check: () => T | Promise<T>, timeoutMs = 5000): Promise<NonNullable<T>> => waitFor(what, check, timeoutMs, 1);

/** Lets the callbacks already queued run (immediates and the promise jobs they start): "nothing more happens". */
export async function settle(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A result writer that keeps every attempt result it is given in `written` and counts them as the store would. */
export function recordingResults(written: AttemptResult[], log: Logger): ResultWriter {
  return new ResultWriter(
    async (batch) => {
      written.push(...batch);
      const counts: Record<AttemptOutcome, number> = { delivered: 0, failed: 0, dead: 0 };
      for (const r of batch) counts[r.outcome]++;
      return counts;
    },
    () => {},
    log,
  );
}
