import { formatDuration, parseDuration } from "./duration.ts";

/**
 * A subscription's circuit breaker. It opens (across all service processes) when either of its
 * conditions holds: `failures` failed attempts in a row, or a failure ratio: at least
 * `ratio.failureRatio` of the attempts in a window failed, once the window holds `minAttempts`.
 * While open nothing of the subscription is sent but one probe every `probeEveryMs`; a probe's
 * success closes it. Open longer than `pauseAfterMs` (null: never), the subscription is paused.
 */
export interface CircuitPolicy {
  /** Failed attempts in a row that open the circuit; null: no such count (a ratio alone). */
  readonly failures: number | null;
  /** The failure ratio that opens the circuit; null: none. */
  readonly ratio: FailureRatioPolicy | null;
  readonly probeEveryMs: number;
  readonly pauseAfterMs: number | null;
}

/**
 * The share of failed attempts that opens the circuit, counted in tumbling windows: a window
 * starts with the first attempt result after the last one ended and lasts `windowMs`; what it
 * counted is forgotten when it ends. `minAttempts` keeps a few early failures (or a quiet
 * subscription's) from opening it.
 */
export interface FailureRatioPolicy {
  readonly failureRatio: number;
  readonly windowMs: number;
  readonly minAttempts: number;
}

export const DEFAULT_CIRCUIT: CircuitPolicy = { failures: 20, ratio: null, probeEveryMs: 30_000, pauseAfterMs: 3 * 86_400_000 };
/** A circuit policy in a few words ("off", "20 in a row", "50% of 20+ in 1m", or both joined by "or"). */
export function describeCircuit(policy: CircuitPolicy | null): string {
  if (policy === null) return "off";
  const parts: string[] = [];
  if (policy.failures !== null) parts.push(`${policy.failures} in a row`);
  if (policy.ratio !== null)
    parts.push(`${Math.round(policy.ratio.failureRatio * 100)}% of ${policy.ratio.minAttempts}+ in ${formatDuration(policy.ratio.windowMs)}`);
  return parts.join(" or ");
}

/** A failure ratio's window and least number of attempts when only the ratio is given. */
export const DEFAULT_RATIO_WINDOW_MS = 60_000;
export const DEFAULT_MIN_ATTEMPTS = 20;

export interface CircuitInput {
  failures?: number | undefined;
  failureRatio?: number | undefined;
  window?: string | undefined;
  minAttempts?: number | undefined;
  probeEvery?: string | undefined;
  pauseAfter?: string | null | undefined;
}

export class CircuitPolicyError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Resolves a subscription's `circuit` option: absent → the defaults, null or false → no breaker.
 * `failures` defaults to 20 unless a `failureRatio` is given (then only the ratio opens it, but
 * both may be set: either opens it).
 */
export function compileCircuitPolicy(input: CircuitInput | null | false | undefined): CircuitPolicy | null {
  if (input === undefined) return DEFAULT_CIRCUIT;
  if (input === null || input === false) return null;
  const failures = input.failures ?? (input.failureRatio === undefined ? DEFAULT_CIRCUIT.failures : null);
  if (failures !== null && (!Number.isInteger(failures) || failures < 1))
    throw new CircuitPolicyError("circuit.failures", "circuit.failures must be a positive integer");
  const ratio = compileRatio(input);
  let probeEveryMs = DEFAULT_CIRCUIT.probeEveryMs;
  if (input.probeEvery !== undefined) {
    const ms = parseDuration(input.probeEvery);
    if (ms === undefined || ms < 100)
      throw new CircuitPolicyError("circuit.probeEvery", `circuit.probeEvery "${input.probeEvery}" is not a duration of 100ms or more`);
    probeEveryMs = ms;
  }
  let pauseAfterMs = DEFAULT_CIRCUIT.pauseAfterMs;
  if (input.pauseAfter === null) pauseAfterMs = null;
  else if (input.pauseAfter !== undefined) {
    const ms = parseDuration(input.pauseAfter);
    if (ms === undefined || ms < 1) throw new CircuitPolicyError("circuit.pauseAfter", `circuit.pauseAfter "${input.pauseAfter}" is not a duration`);
    pauseAfterMs = ms;
  }
  return { failures, ratio, probeEveryMs, pauseAfterMs };
}

function compileRatio(input: CircuitInput): FailureRatioPolicy | null {
  const { failureRatio, window, minAttempts } = input;
  if (failureRatio === undefined) {
    // A window without a ratio would silently do nothing.
    if (window !== undefined) throw new CircuitPolicyError("circuit.window", "circuit.window applies only with circuit.failureRatio");
    if (minAttempts !== undefined) throw new CircuitPolicyError("circuit.minAttempts", "circuit.minAttempts applies only with circuit.failureRatio");
    return null;
  }
  if (typeof failureRatio !== "number" || !(failureRatio > 0 && failureRatio <= 1))
    throw new CircuitPolicyError("circuit.failureRatio", "circuit.failureRatio must be a number more than 0 and at most 1");
  let windowMs = DEFAULT_RATIO_WINDOW_MS;
  if (window !== undefined) {
    const ms = parseDuration(window);
    if (ms === undefined || ms < 1000) throw new CircuitPolicyError("circuit.window", `circuit.window "${window}" is not a duration of 1s or more`);
    windowMs = ms;
  }
  const least = minAttempts ?? DEFAULT_MIN_ATTEMPTS;
  if (!Number.isInteger(least) || least < 1) throw new CircuitPolicyError("circuit.minAttempts", "circuit.minAttempts must be a positive integer");
  return { failureRatio, windowMs, minAttempts: least };
}

/**
 * A policy as stored (a subscription's `circuit` column): those written before failure ratios
 * existed have no `ratio`.
 */
export function storedCircuitPolicy(stored: unknown): CircuitPolicy | null {
  if (stored === null || stored === undefined) return null;
  const p = stored as Partial<CircuitPolicy>;
  return {
    failures: p.failures ?? null,
    ratio: p.ratio ?? null,
    probeEveryMs: p.probeEveryMs ?? DEFAULT_CIRCUIT.probeEveryMs,
    pauseAfterMs: p.pauseAfterMs === undefined ? DEFAULT_CIRCUIT.pauseAfterMs : p.pauseAfterMs,
  };
}

export const CircuitStates = { closed: "closed", open: "open", halfOpen: "half_open" } as const;
export type CircuitState = (typeof CircuitStates)[keyof typeof CircuitStates];

/** A subscription's health as stored (times in ms since the epoch, by the database's clock). */
export interface Health {
  readonly state: CircuitState;
  readonly consecutiveFailures: number;
  readonly openedAt: number | null;
  /** Open: when the next probe may go; half open: the probe's deadline (after it, another may go). */
  readonly nextProbeAt: number | null;
  /** A receiver's 429 Retry-After: nothing of the subscription starts before this. */
  readonly throttledUntil: number | null;
  /** The failure ratio's current window: when it started (null: none yet), its attempts and failures. */
  readonly windowStartedAt: number | null;
  readonly windowAttempts: number;
  readonly windowFailures: number;
}

const NO_WINDOW = { windowStartedAt: null, windowAttempts: 0, windowFailures: 0 } as const;

export const HEALTHY: Health = { state: "closed", consecutiveFailures: 0, openedAt: null, nextProbeAt: null, throttledUntil: null, ...NO_WINDOW };

/** What a run of attempt results of one subscription says, in the order they ended. */
export interface Tally {
  readonly attempts: number;
  readonly failures: number;
  /** Failures after the last success (all of them when none succeeded). */
  readonly trailingFailures: number;
  readonly succeeded: boolean;
  /** Whether a probe among them succeeded. */
  readonly probeSucceeded: boolean;
  /** The latest end of a 429's Retry-After among them (ms since the epoch), or null. */
  readonly throttledUntil: number | null;
}

export const NO_RESULTS: Tally = { attempts: 0, failures: 0, trailingFailures: 0, succeeded: false, probeSucceeded: false, throttledUntil: null };

/** Adds one attempt's result to a tally. */
export function count(t: Tally, ok: boolean, throttledUntil: number | null = null, probe = false): Tally {
  return merge(t, { attempts: 1, failures: ok ? 0 : 1, trailingFailures: ok ? 0 : 1, succeeded: ok, probeSucceeded: ok && probe, throttledUntil });
}

/** The tally of `a` followed by `b`. */
export function merge(a: Tally, b: Tally): Tally {
  return {
    attempts: a.attempts + b.attempts,
    failures: a.failures + b.failures,
    trailingFailures: b.succeeded ? b.trailingFailures : a.trailingFailures + b.failures,
    succeeded: a.succeeded || b.succeeded,
    probeSucceeded: a.probeSucceeded || b.probeSucceeded,
    throttledUntil: later(a.throttledUntil, b.throttledUntil),
  };
}

const later = (a: number | null, b: number | null): number | null => (a === null ? b : b === null ? a : Math.max(a, b));

export type HealthEvent = "opened" | "closed";

/**
 * The health after a tally of results. A success closes an open circuit: a probe's, or, without
 * a failure ratio, an attempt's that was in flight when it opened (the receiver answers again
 * either way; with a ratio some answers are expected while it fails too often); a closed
 * one opens when failures in a row reach the policy's count, or when its window's failure ratio
 * reaches the policy's with at least its least number of attempts counted; a failed probe
 * leaves it open until the next probe time (set when the probe was taken). Without a policy the
 * breaker never opens. Only a closed circuit counts a window: opening or closing starts afresh.
 * `why` says what opened it.
 */
export function afterResults(current: Health, t: Tally, policy: CircuitPolicy | null, now: number): { next: Health; event: HealthEvent | null; why?: string } {
  const failures = t.succeeded ? t.trailingFailures : current.consecutiveFailures + t.failures;
  const throttledUntil = later(current.throttledUntil, t.throttledUntil);
  if (current.state !== "closed") {
    if (policy === null || (policy.ratio ? t.probeSucceeded : t.succeeded)) {
      return { next: { ...HEALTHY, consecutiveFailures: failures, throttledUntil }, event: "closed" };
    }
    return { next: { ...current, state: "open", consecutiveFailures: failures, throttledUntil }, event: null };
  }
  const window = policy?.ratio ? counted(current, t, policy.ratio, now) : NO_WINDOW;
  const why =
    policy && policy.failures !== null && failures >= policy.failures
      ? `${failures} attempts failed in a row`
      : policy?.ratio && ratioReached(window, policy.ratio)
        ? `${window.windowFailures} of ${window.windowAttempts} attempts failed within ${policy.ratio.windowMs / 1000}s`
        : null;
  if (why !== null) {
    const next: Health = { state: "open", consecutiveFailures: failures, openedAt: now, nextProbeAt: now + policy!.probeEveryMs, throttledUntil, ...NO_WINDOW };
    return { next, event: "opened", why };
  }
  return { next: { ...current, consecutiveFailures: failures, throttledUntil, ...window }, event: null };
}

type Window = Pick<Health, "windowStartedAt" | "windowAttempts" | "windowFailures">;

/** The window with the tally counted in: a window that has ended is forgotten and a new one starts now. */
function counted(current: Health, t: Tally, ratio: FailureRatioPolicy, now: number): Window {
  if (t.attempts === 0) return current;
  if (current.windowStartedAt === null || now >= current.windowStartedAt + ratio.windowMs) {
    return { windowStartedAt: now, windowAttempts: t.attempts, windowFailures: t.failures };
  }
  return { windowStartedAt: current.windowStartedAt, windowAttempts: current.windowAttempts + t.attempts, windowFailures: current.windowFailures + t.failures };
}

function ratioReached(w: Window, ratio: FailureRatioPolicy): boolean {
  return w.windowAttempts >= ratio.minAttempts && w.windowFailures / w.windowAttempts >= ratio.failureRatio;
}

/** Whether a delivery of the subscription (not a probe) may start now. */
export function admits(h: Health | undefined, policy: CircuitPolicy | null, now: number): boolean {
  if (!h) return true;
  if (h.throttledUntil !== null && h.throttledUntil > now) return false;
  return policy === null || h.state === "closed";
}

/** Whether a probe may be taken now (the database decides who takes it). */
export function probeDue(h: Health | undefined, policy: CircuitPolicy | null, now: number): boolean {
  return !!h && policy !== null && h.state !== "closed" && h.nextProbeAt !== null && h.nextProbeAt <= now && (h.throttledUntil ?? 0) <= now;
}

/** Whether the circuit has been open longer than the policy allows: the subscription is to be paused. */
export function pauseDue(h: Health | undefined, policy: CircuitPolicy | null, now: number): boolean {
  return !!h && policy !== null && policy.pauseAfterMs !== null && h.state !== "closed" && h.openedAt !== null && now - h.openedAt >= policy.pauseAfterMs;
}
