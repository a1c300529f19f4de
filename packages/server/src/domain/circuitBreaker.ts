import { parseDuration } from "./duration.ts";

/**
 * A subscription's circuit breaker: after `failures` failed attempts in a row (across all
 * service processes) it opens; while open nothing of the subscription is sent but one probe
 * every `probeEveryMs`; a probe's success closes it. Open longer than `pauseAfterMs` (null:
 * never), the subscription is paused.
 */
export interface CircuitPolicy {
  readonly failures: number;
  readonly probeEveryMs: number;
  readonly pauseAfterMs: number | null;
}

export const DEFAULT_CIRCUIT: CircuitPolicy = { failures: 20, probeEveryMs: 30_000, pauseAfterMs: 3 * 86_400_000 };

export interface CircuitInput {
  failures?: number | undefined;
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

/** Resolves a subscription's `circuit` option: absent → the defaults, null or false → no breaker. */
export function compileCircuitPolicy(input: CircuitInput | null | false | undefined): CircuitPolicy | null {
  if (input === undefined) return DEFAULT_CIRCUIT;
  if (input === null || input === false) return null;
  const failures = input.failures ?? DEFAULT_CIRCUIT.failures;
  if (!Number.isInteger(failures) || failures < 1) throw new CircuitPolicyError("circuit.failures", "circuit.failures must be a positive integer");
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
  return { failures, probeEveryMs, pauseAfterMs };
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
}

export const HEALTHY: Health = { state: "closed", consecutiveFailures: 0, openedAt: null, nextProbeAt: null, throttledUntil: null };

/** What a run of attempt results of one subscription says, in the order they ended. */
export interface Tally {
  readonly failures: number;
  /** Failures after the last success (all of them when none succeeded). */
  readonly trailingFailures: number;
  readonly succeeded: boolean;
  /** The latest end of a 429's Retry-After among them (ms since the epoch), or null. */
  readonly throttledUntil: number | null;
}

export const NO_RESULTS: Tally = { failures: 0, trailingFailures: 0, succeeded: false, throttledUntil: null };

/** Adds one attempt's result to a tally. */
export function count(t: Tally, ok: boolean, throttledUntil: number | null = null): Tally {
  return merge(t, { failures: ok ? 0 : 1, trailingFailures: ok ? 0 : 1, succeeded: ok, throttledUntil });
}

/** The tally of `a` followed by `b`. */
export function merge(a: Tally, b: Tally): Tally {
  return {
    failures: a.failures + b.failures,
    trailingFailures: b.succeeded ? b.trailingFailures : a.trailingFailures + b.failures,
    succeeded: a.succeeded || b.succeeded,
    throttledUntil: later(a.throttledUntil, b.throttledUntil),
  };
}

const later = (a: number | null, b: number | null): number | null => (a === null ? b : b === null ? a : Math.max(a, b));

export type HealthEvent = "opened" | "closed";

/**
 * The health after a tally of results. A success closes an open circuit (a probe's, or an
 * attempt that was in flight when it opened: the receiver answers again either way); failures
 * in a row reaching the policy's count open a closed one; a failed probe leaves it open until
 * the next probe time (set when the probe was taken). Without a policy the breaker never opens.
 */
export function afterResults(current: Health, t: Tally, policy: CircuitPolicy | null, now: number): { next: Health; event: HealthEvent | null } {
  const failures = t.succeeded ? t.trailingFailures : current.consecutiveFailures + t.failures;
  const throttledUntil = later(current.throttledUntil, t.throttledUntil);
  if (current.state !== "closed") {
    if (t.succeeded || policy === null) {
      return { next: { ...HEALTHY, consecutiveFailures: failures, throttledUntil }, event: "closed" };
    }
    return { next: { ...current, state: "open", consecutiveFailures: failures, throttledUntil }, event: null };
  }
  if (policy !== null && failures >= policy.failures) {
    return { next: { state: "open", consecutiveFailures: failures, openedAt: now, nextProbeAt: now + policy.probeEveryMs, throttledUntil }, event: "opened" };
  }
  return { next: { ...current, consecutiveFailures: failures, throttledUntil }, event: null };
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
