/** One event of an alert (a row of alert_events): everything a notification says of it. */
export interface AlertEvent {
  readonly id: number;
  /** The transaction that wrote it (xid8, as text): events are read in (tx, id) order. */
  readonly tx: string;
  readonly alertId: number;
  readonly event: string;
  readonly condition: string;
  readonly subject: string;
  readonly summary: string;
  readonly nextStep: string;
  /** A console hash path, e.g. "#/subscriptions/orders". */
  readonly link: string;
  readonly at: Date;
}

/** An event as a notification carries it: its link made absolute. */
export interface NotifiedEvent {
  readonly id: number;
  readonly alertId: number;
  readonly event: string;
  readonly condition: string;
  readonly subject: string;
  readonly summary: string;
  readonly nextStep: string;
  readonly url: string;
  readonly at: string;
}

/** What every channel sends, in its own form. */
export interface Notification {
  /** `alerts` for events, `test` for a test sent by hand. */
  readonly kind: "alerts" | "test";
  /** One line: the subject of an email, the header of a Slack message. */
  readonly title: string;
  /** The plain text: each event's summary, next step and link. */
  readonly text: string;
  readonly events: readonly NotifiedEvent[];
  /** How many events of each condition and event. */
  readonly counts: readonly { condition: string; event: string; count: number }[];
  /** The console's alerts page. */
  readonly consoleUrl: string;
  /** Stable across retries of the same events: the webhook's `webhook-id`. */
  readonly id: string;
}

/** Events listed one by one in a digest's text; the rest are counted. */
export const LISTED_EVENTS = 20;

/** A console hash path under the console's public URL. */
export function consoleLink(publicUrl: string, link: string): string {
  const base = publicUrl.split("#")[0]!;
  return link.startsWith("#") ? `${base}${link}` : `${base}#${link.startsWith("/") ? "" : "/"}${link}`;
}

/** One notification for the waiting events of a channel: one event as it is, several as a digest. */
export function buildNotification(channelId: number, events: readonly AlertEvent[], publicUrl: string): Notification {
  if (events.length === 0) throw new Error("a notification needs at least one event");
  const notified = events.map((e) => ({
    id: e.id,
    alertId: e.alertId,
    event: e.event,
    condition: e.condition,
    subject: e.subject,
    summary: e.summary,
    nextStep: e.nextStep,
    url: consoleLink(publicUrl, e.link),
    at: e.at.toISOString(),
  }));
  const tally = new Map<string, { condition: string; event: string; count: number }>();
  for (const e of events) {
    const key = `${e.condition}\0${e.event}`;
    const entry = tally.get(key) ?? { condition: e.condition, event: e.event, count: 0 };
    entry.count++;
    tally.set(key, entry);
  }
  const counts = [...tally.values()].sort((a, b) => b.count - a.count || a.condition.localeCompare(b.condition));
  const consoleUrl = consoleLink(publicUrl, "#/overview");
  const first = notified[0]!;
  const id = `tidings-channel-${channelId}-${first.id}-${notified[notified.length - 1]!.id}`;
  if (notified.length === 1) {
    return {
      kind: "alerts",
      title: `[Tidings] ${first.condition} ${first.event}: ${first.subject}`,
      text: `${first.summary}\nNext step: ${first.nextStep}\nOpen: ${first.url}\n`,
      events: notified,
      counts,
      consoleUrl,
      id,
    };
  }
  const what = counts.map((c) => `${c.count} ${c.condition} ${c.event}`).join(", ");
  const lines = notified
    .slice(0, LISTED_EVENTS)
    .map((e) => `- ${e.condition} ${e.event}: ${e.subject}: ${e.summary}\n  Next step: ${e.nextStep}\n  Open: ${e.url}`);
  const more = notified.length > LISTED_EVENTS ? `\n…and ${notified.length - LISTED_EVENTS} more: ${consoleUrl}` : "";
  return {
    kind: "alerts",
    title: `[Tidings] ${notified.length} alert events: ${what}`,
    text: `${notified.length} alert events (${what}):\n\n${lines.join("\n")}${more}\n`,
    events: notified,
    counts,
    consoleUrl,
    id,
  };
}

/** The notification "send a test" sends. */
export function testNotification(channelId: number, publicUrl: string, now: Date): Notification {
  const consoleUrl = consoleLink(publicUrl, "#/channels");
  return {
    kind: "test",
    title: "[Tidings] Test notification",
    text: `This is a test of a Tidings notification channel, sent by hand. Nothing to do.\nOpen: ${consoleUrl}\n`,
    events: [],
    counts: [],
    consoleUrl,
    id: `tidings-channel-${channelId}-test-${now.getTime()}`,
  };
}

/**
 * How long a channel must wait before its next notification under its limit of `perMinute`
 * a minute, given when it sent (or tried) those of the last minute: 0 when it may send now.
 */
export function rateLimitWaitMs(recent: readonly Date[], perMinute: number, now: number): number {
  const inWindow = recent.map((d) => d.getTime()).filter((t) => t > now - 60_000);
  if (inWindow.length < perMinute) return 0;
  inWindow.sort((a, b) => a - b);
  // The oldest of the last `perMinute` must leave the window first.
  return Math.max(1, inWindow[inWindow.length - perMinute]! + 60_000 - now);
}

/** The wait after the `failures`-th failure in a row: its step of the schedule, the last repeating. */
export function retryDelayMs(schedule: readonly number[], failures: number): number {
  return schedule[Math.min(Math.max(failures, 1), schedule.length) - 1]!;
}
