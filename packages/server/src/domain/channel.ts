import { formatDuration, parseDuration } from "./duration.ts";

/** The kinds of notification channel. */
export const CHANNEL_TYPES = ["webhook", "slack", "email"] as const;
export type ChannelType = (typeof CHANNEL_TYPES)[number];
/** The events of an alert (alert_events.event). */
export const ALERT_EVENTS = ["opened", "acknowledged", "resolved"] as const;
/** How an email channel talks to its SMTP server: TLS from the start, STARTTLS required, or plain. */
export const SMTP_TLS = ["implicit", "starttls", "none"] as const;
export type SmtpTls = (typeof SMTP_TLS)[number];

export interface SmtpSettings {
  readonly host: string;
  readonly port: number;
  readonly tls: SmtpTls;
  readonly username: string | null;
  readonly from: string;
  readonly to: readonly string[];
}

/** A channel's settings, secrets apart (they are in `secret`). */
export type ChannelSettings = { readonly url: string } | { readonly url: null } | SmtpSettings;

export interface ChannelFilter {
  /** Only these conditions (null: all). */
  readonly conditions: readonly string[] | null;
  /** Only these events (null: all). */
  readonly events: readonly string[] | null;
}

/** A channel as stored, with its sending state. */
export interface ChannelRow {
  readonly id: number;
  readonly name: string;
  readonly type: ChannelType;
  readonly settings: ChannelSettings;
  /** The webhook's signing secret, the Slack URL, or the SMTP password. */
  readonly secret: string | null;
  readonly filter: ChannelFilter;
  readonly perMinute: number;
  readonly retrySchedule: readonly number[];
  readonly enabled: boolean;
  /** Its place in the alert events: the last one told of, in (tx, id) order. */
  readonly cursorTx: string;
  readonly cursor: number;
  readonly notBefore: Date;
  readonly failures: number;
  readonly lastError: string | null;
  readonly lastErrorAt: Date | null;
  readonly lastSentAt: Date | null;
  readonly sent: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export const DEFAULT_PER_MINUTE = 6;
/** After a failed notification: 10 s, 30 s, 1 min, 5 min, then every 15 min until it goes through. */
export const DEFAULT_CHANNEL_RETRY = ["10s", "30s", "1m", "5m", "15m"];

/** What the API shows in place of a secret; sent back in a PATCH it keeps the stored value. */
export const MASK = "***";

/** A refusal naming the field at fault. */
export class ChannelInputError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** A Slack URL as shown: its origin and first path segment; the rest (the token) masked. */
export function maskSlackUrl(text: string): string {
  try {
    const url = new URL(text);
    const first = url.pathname.split("/").filter(Boolean)[0];
    return `${url.origin}/${first ? `${first}/` : ""}${MASK}`;
  } catch {
    return MASK;
  }
}

/** The retry schedule from its spelling (`["10s","1m"]`), or a refusal naming the step. */
export function compileChannelRetry(schedule: readonly string[] | undefined): number[] {
  const texts = schedule ?? DEFAULT_CHANNEL_RETRY;
  if (texts.length === 0 || texts.length > 20) throw new ChannelInputError("retry.schedule", "retry.schedule must have 1 to 20 steps");
  return texts.map((text, i) => {
    const ms = parseDuration(text);
    if (ms === undefined || ms < 100 || ms > 86_400_000) {
      throw new ChannelInputError(`retry.schedule[${i}]`, `retry.schedule[${i}] "${text}" is not a duration from 100ms to 1d`);
    }
    return ms;
  });
}

export const showRetry = (schedule: readonly number[]) => ({ schedule: schedule.map(formatDuration) });

/** A plain mailbox: no display name, no spaces or angle brackets (nothing a header could be built from). */
const MAILBOX = /^[^\s@<>,;"]+@[^\s@<>,;"]+$/;

/** The SMTP settings given, checked; the field names are those of the request. */
export function checkSmtp(given: {
  host: string;
  port?: number | undefined;
  tls?: SmtpTls | undefined;
  username?: string | null | undefined;
  from: string;
  to: readonly string[];
}): SmtpSettings {
  if (!/^[A-Za-z0-9.:[\]-]{1,253}$/.test(given.host)) throw new ChannelInputError("smtp.host", `smtp.host "${given.host}" is not a host name or address`);
  if (!MAILBOX.test(given.from)) throw new ChannelInputError("smtp.from", `smtp.from "${given.from}" is not an email address`);
  given.to.forEach((to, i) => {
    if (!MAILBOX.test(to)) throw new ChannelInputError(`smtp.to[${i}]`, `smtp.to[${i}] "${to}" is not an email address`);
  });
  const tls = given.tls ?? "starttls";
  return {
    host: given.host,
    port: given.port ?? (tls === "implicit" ? 465 : 587),
    tls,
    username: given.username ?? null,
    from: given.from,
    to: [...given.to],
  };
}

/** Whether a channel's filter lets an event through. */
export function passes(filter: ChannelFilter, event: { condition: string; event: string }): boolean {
  if (filter.conditions && !filter.conditions.includes(event.condition)) return false;
  if (filter.events && !filter.events.includes(event.event)) return false;
  return true;
}
