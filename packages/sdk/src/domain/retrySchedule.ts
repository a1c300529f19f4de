import { TidingsError } from "../errors.ts";

/**
 * The service's default schedule for subscriptions (escalating), and the
 * broker consumers' default too: after a failure, the next tries 1m, 5m, 10m … 10h later.
 */
export const DEFAULT_RETRY_SCHEDULE = ["1m", "5m", "10m", "30m", "1h", "2h", "5h", "10h"] as const;

/** Durations as the service writes them: `500ms`, `30s`, `5m`, `2h`, `1d` (an integer and a unit). */
const UNITS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const PATTERN = /^(\d{1,9})(ms|s|m|h|d)$/;

/** Milliseconds for a duration text, or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const match = PATTERN.exec(text.trim());
  return match ? Number(match[1]) * UNITS[match[2] as keyof typeof UNITS] : undefined;
}

/** A consumer's retries, as its options give them (the syntax of a subscription's `retry`). */
export interface RetryOptions {
  /** Pauses between tries, e.g. `["100ms", "2s", "1m"]`; default DEFAULT_RETRY_SCHEDULE. */
  schedule?: readonly string[];
  /** Tries in all, the first included; default one more than the schedule's steps. */
  maxAttempts?: number;
}

export interface RetryPlan {
  /** The pause before try n+2 after try n+1 failed (ms); past its end, its last step again. */
  readonly schedule: readonly number[];
  readonly maxAttempts: number;
}

/** Validates a consumer's retry options once, naming the field at fault. */
export function compileRetryPlan(options: RetryOptions = {}): RetryPlan {
  const texts = options.schedule ?? DEFAULT_RETRY_SCHEDULE;
  const schedule = texts.map((text, i) => {
    const ms = parseDuration(text);
    if (ms === undefined)
      throw new TidingsError("config", `retry.schedule[${i}]: "${text}" is not a duration (use e.g. 500ms, 30s, 5m, 2h)`, { field: `retry.schedule[${i}]` });
    return ms;
  });
  const maxAttempts = options.maxAttempts ?? schedule.length + 1;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1)
    throw new TidingsError("config", "retry.maxAttempts must be a positive integer", { field: "retry.maxAttempts" });
  if (schedule.length === 0 && maxAttempts > 1)
    throw new TidingsError("config", "an empty retry.schedule allows only one attempt", { field: "retry.schedule" });
  return { schedule, maxAttempts };
}

/** After try number `attempt` (1-based) failed: the pause before the next, or "give up". */
export function nextTry(plan: RetryPlan, attempt: number): { retryInMs: number } | "give up" {
  if (attempt >= plan.maxAttempts) return "give up";
  return { retryInMs: plan.schedule[Math.min(Math.max(attempt, 1) - 1, plan.schedule.length - 1)] ?? 0 };
}
