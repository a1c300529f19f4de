import { parseDuration } from "./duration.ts";

/** The default escalating schedule: at once, then 1m, 5m, 10m, 30m, 1h, 2h, 5h, 10h. */
export const DEFAULT_SCHEDULE = ["1m", "5m", "10m", "30m", "1h", "2h", "5h", "10h"] as const;

export interface RetryPolicy {
  /** Delay before attempt n+2 after attempt n+1 failed (ms). */
  readonly schedule: readonly number[];
  /** Total attempts, the first included. */
  readonly maxAttempts: number;
  /** Measured from the first attempt: no attempt is scheduled past it (ms), or null. */
  readonly windowMs: number | null;
}

export interface RetryInput {
  schedule?: readonly string[] | undefined;
  maxAttempts?: number | undefined;
  window?: string | undefined;
}

export class RetryPolicyError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** Validates and resolves a subscription's retry options; throws RetryPolicyError naming the field. */
export function compileRetryPolicy(input: RetryInput = {}): RetryPolicy {
  const texts = input.schedule ?? DEFAULT_SCHEDULE;
  const schedule = texts.map((text, i) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      throw new RetryPolicyError(`retry.schedule[${i}]`, `"${text}" is not a duration (use e.g. 500ms, 30s, 5m, 2h)`);
    }
    return ms;
  });
  const maxAttempts = input.maxAttempts ?? schedule.length + 1;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new RetryPolicyError("retry.maxAttempts", "maxAttempts must be a positive integer");
  }
  if (schedule.length === 0 && maxAttempts > 1) {
    throw new RetryPolicyError("retry.schedule", "an empty schedule allows only one attempt");
  }
  let windowMs: number | null = null;
  if (input.window !== undefined) {
    const ms = parseDuration(input.window);
    if (ms === undefined) throw new RetryPolicyError("retry.window", `"${input.window}" is not a duration`);
    windowMs = ms;
  }
  return { schedule, maxAttempts, windowMs };
}

export type FailureOutcome = { readonly kind: "retry"; readonly delayMs: number } | { readonly kind: "dead"; readonly reason: string };

/**
 * What happens after attempt number `attempt` (1-based) failed.
 * `retryAfterMs` is the receiver's Retry-After, honoured but bounded by the schedule's longest step.
 */
export function afterFailure(policy: RetryPolicy, attempt: number, elapsedSinceFirstMs: number, retryAfterMs?: number): FailureOutcome {
  if (attempt >= policy.maxAttempts) {
    return { kind: "dead", reason: `gave up after ${attempt} attempt${attempt === 1 ? "" : "s"}` };
  }
  const step = policy.schedule[Math.min(attempt - 1, policy.schedule.length - 1)] ?? 0;
  const longest = policy.schedule.reduce((a, b) => Math.max(a, b), 0);
  const delayMs = retryAfterMs === undefined ? step : Math.min(Math.max(retryAfterMs, 0), longest);
  if (policy.windowMs !== null && elapsedSinceFirstMs + delayMs > policy.windowMs) {
    return { kind: "dead", reason: `retry window of ${policy.windowMs}ms exhausted after ${attempt} attempts` };
  }
  return { kind: "retry", delayMs };
}
