import { formatDuration, parseDuration } from "./duration.ts";
import { invalid } from "./errors.ts";

/**
 * Alerts for people, grouped: one alert is open per condition and subject at a time and counts
 * its occurrences. open → acknowledged (who, note) → resolved (its condition cleared, or by hand).
 */
export const ALERT_STATES = { open: "open", acknowledged: "acknowledged", resolved: "resolved" } as const;
export type AlertState = (typeof ALERT_STATES)[keyof typeof ALERT_STATES];

/** The conditions the service raises itself; `raiseAlert` takes others too (e.g. a relay's heartbeat). */
export const ALERT_CONDITIONS = {
  /** Deliveries of a subscription died; clears when one of its deliveries succeeds again, or when none of them is dead any more (re-sent or skipped). */
  deliveryDead: "delivery_dead",
  /** Keys of a subscription ordered by key held by a dead delivery; clears when none is held. */
  keyBlocked: "key_blocked",
  /** Messages of an app (or the admin's) in doubt; clears when none is. */
  messageInDoubt: "message_in_doubt",
  /** A subscription's circuit opened; clears when it closes. */
  circuitOpen: "circuit_open",
  /** A subscription paused by its breaker; clears when it is resumed. */
  subscriptionAutoPaused: "subscription_auto_paused",
  /** A subscription's oldest pending delivery is older than the threshold; clears when none is. */
  pendingTooOld: "pending_too_old",
  /** An app's check URL failed that many times in a row; clears on its next answer. */
  checkUrlFailing: "check_url_failing",
  /** An outbox relay stopped reporting (no heartbeat for TIDINGS_RELAY_STALE_AFTER); clears when it reports again, stops on purpose or is forgotten. */
  relayStale: "relay_stale",
  /** An outbox relay holds rows it could not ship; clears when its heartbeat says none. */
  relayFailedRows: "relay_failed_rows",
} as const;
export type AlertCondition = (typeof ALERT_CONDITIONS)[keyof typeof ALERT_CONDITIONS];

/** Examples kept per alert: the latest occurrences. */
export const ALERT_EXAMPLES = 10;
/** Who resolves an alert whose condition cleared. */
export const ALERT_SYSTEM_ACTOR = "tidings";

/**
 * How people name a subject, as the store's statements write it ("subscription " || name): an
 * alert's subject is also its group, so a condition raised from outside (raiseAlert) about a
 * subscription or an app must name it the same way.
 */
export const subscriptionSubject = (name: string): string => `subscription ${name}`;
export const appSubject = (app: string | null): string => (app === null ? "admin" : `app ${app}`);
export const relaySubject = (app: string | null, name: string): string => `relay ${name} of ${appSubject(app)}`;

/** What to do, for each condition's alert while it is open. */
export const NEXT_STEPS: Record<AlertCondition, string> = {
  delivery_dead:
    "see why on the subscription's page (last errors); once its endpoint answers again, re-send the dead deliveries (Dead letters, or Re-send all in batches)",
  key_blocked: "re-send or skip the dead delivery that holds each key (Dead letters); the later messages of the key wait until then",
  message_in_doubt:
    "check in the producer's database whether each change committed, then commit or roll back the message by hand (Dead letters: Messages in doubt)",
  circuit_open: "check the endpoint: deliveries wait and a probe goes out at intervals; they resume by themselves when it succeeds",
  subscription_auto_paused: "fix the endpoint, then resume the subscription to deliver what waited",
  pending_too_old:
    "look at the subscription: paused, circuit open, a rate limit or max in flight too low, or a slow endpoint; Retry pending now sends its waiting retries at once",
  check_url_failing: "check that the app's check URL answers (the app's page): its prepared messages cannot be settled until it does",
  relay_stale:
    "check that the producer's relay runs and reaches the service; the rows of its outbox wait until it does (a relay gone for good: forget it, DELETE /v1/relays/:app/:name)",
  relay_failed_rows:
    "look at the failed rows in the producer's outbox (the relay's log says why the service refused them), fix them and retry them (outbox.retry())",
};

/** A note given with an acknowledge or a resolve, as stored. */
export const ALERT_NOTE_MAX = 1000;

/** The bounds of a subscription's own pending-age threshold (`pendingAgeAlert`). */
export const PENDING_AGE_ALERT_MIN_MS = 1_000;
export const PENDING_AGE_ALERT_MAX_MS = 30 * 86_400_000;

/**
 * A subscription's `pendingAgeAlert` as stored: a duration (1s to 30d) in milliseconds, false
 * as 0 (no pending-age alert), null as null (the service's default); undefined stays undefined.
 */
export function pendingAgeAlertMs(value: string | false | null | undefined): number | null | undefined {
  if (value === undefined || value === null) return value;
  if (value === false) return 0;
  const ms = parseDuration(value);
  if (ms === undefined || ms < PENDING_AGE_ALERT_MIN_MS || ms > PENDING_AGE_ALERT_MAX_MS) {
    throw invalid(
      "pendingAgeAlert",
      `pendingAgeAlert must be a duration from 1s to 30d (e.g. 15m), false (no pending-age alert) or null (the service's default), not ${JSON.stringify(value)}`,
    );
  }
  return ms;
}

/** A subscription's `pendingAgeAlert` as the API shows it: a duration, false (off) or null (the service's default). */
export const showPendingAgeAlert = (ms: number | null): string | false | null => (ms === null ? null : ms === 0 ? false : formatDuration(ms));
