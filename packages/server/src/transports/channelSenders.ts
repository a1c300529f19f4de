import nodemailer from "nodemailer";
import type { ChannelRow, SmtpSettings } from "../domain/channel.ts";
import { formatDuration } from "../domain/duration.ts";
import type { AddressJudge } from "../domain/networkPolicy.ts";
import type { Notification } from "../domain/notification.ts";
import { storableText } from "../domain/storableText.ts";
import { resolveAllowed } from "./guardedConnect.ts";
import { ERROR_TEXT_LIMIT, errorText, type HttpTransport } from "./httpTransport.ts";

/** What became of one notification. */
export interface ChannelSendResult {
  readonly ok: boolean;
  /** The HTTP status, or the SMTP server's reply code; null when there was none. */
  readonly statusCode: number | null;
  /** Why it failed (never a secret); null when it went through. */
  readonly error: string | null;
  readonly latencyMs: number;
}

/** The JSON a webhook channel POSTs, signed per Standard Webhooks. */
export function webhookBody(n: Notification, now: Date): string {
  return JSON.stringify({
    type: n.kind,
    id: n.id,
    title: n.title,
    text: n.text,
    events: n.events,
    counts: n.counts,
    consoleUrl: n.consoleUrl,
    sentAt: now.toISOString(),
  });
}

/** Slack's mrkdwn needs &, < and > escaped; a link is <url|text>. */
const mrkdwn = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const cut = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);
/** Events shown as blocks of their own; Slack takes at most 50 blocks a message. */
const SLACK_EVENT_BLOCKS = 10;

/** The body of a Slack-compatible incoming webhook: `text` (the fallback and notifications) and `blocks`. */
export function slackBody(n: Notification): string {
  const blocks: unknown[] = [{ type: "header", text: { type: "plain_text", text: cut(n.title, 150) } }];
  if (n.events.length === 0) {
    blocks.push({ type: "section", text: { type: "mrkdwn", text: cut(mrkdwn(n.text), 3000) } });
  } else {
    if (n.events.length > 1) {
      const counts = n.counts.map((c) => `${c.count} ${c.condition} ${c.event}`).join(", ");
      blocks.push({ type: "section", text: { type: "mrkdwn", text: cut(mrkdwn(`${n.events.length} alert events: ${counts}`), 3000) } });
    }
    for (const e of n.events.slice(0, SLACK_EVENT_BLOCKS)) {
      const text = `*${mrkdwn(`${e.condition} ${e.event}`)}*: ${mrkdwn(e.subject)}\n${mrkdwn(e.summary)}\n*Next step:* ${mrkdwn(e.nextStep)}\n<${e.url}|Open in the console>`;
      blocks.push({ type: "section", text: { type: "mrkdwn", text: cut(text, 3000) } });
    }
    if (n.events.length > SLACK_EVENT_BLOCKS) {
      blocks.push({
        type: "context",
        elements: [{ type: "mrkdwn", text: `…and ${n.events.length - SLACK_EVENT_BLOCKS} more: <${n.consoleUrl}|the console>` }],
      });
    }
  }
  return JSON.stringify({ text: cut(`${n.title}\n${n.text}`, 4000), blocks });
}

/**
 * Sends notifications to the channels: webhooks and Slack through an HTTP transport of their own
 * (its overall deadline, answer cap and network policy), email over SMTP with nodemailer, to an
 * address the network policy allows, within the same overall deadline.
 */
export class ChannelSenders {
  private readonly timeoutText: string;

  constructor(
    private readonly http: HttpTransport,
    private readonly judge: AddressJudge,
    private readonly timeoutMs: number,
  ) {
    this.timeoutText = `timeout after ${formatDuration(timeoutMs)}`;
  }

  async send(channel: ChannelRow, n: Notification, signal?: AbortSignal): Promise<ChannelSendResult> {
    const started = performance.now();
    const done = (r: Omit<ChannelSendResult, "latencyMs">): ChannelSendResult => ({ ...r, latencyMs: Math.round(performance.now() - started) });
    try {
      if (channel.type === "email") return done(await this.email(channel.settings as SmtpSettings, channel.secret, n, signal));
      const now = new Date();
      const url = channel.type === "slack" ? channel.secret! : (channel.settings as { url: string }).url;
      const x =
        channel.type === "slack"
          ? await this.http.post(url, {}, slackBody(n), signal)
          : await this.http.call(url, channel.secret!, n.id, webhookBody(n, now), {}, signal);
      // undici's own timeouts are the overall deadline here (its headers timeout is set to it).
      if (x.error !== null && /^UND_ERR_(HEADERS|BODY)_TIMEOUT/.test(x.error)) return done({ ok: false, statusCode: x.statusCode, error: this.timeoutText });
      if (x.error !== null) return done({ ok: false, statusCode: x.statusCode, error: this.hideUrl(x.error, url) });
      const status = x.statusCode!;
      if (status >= 200 && status < 300) return done({ ok: true, statusCode: status, error: null });
      return done({ ok: false, statusCode: status, error: storableText(`HTTP ${status}${x.text ? `: ${x.text}` : ""}`, ERROR_TEXT_LIMIT) });
    } catch (error) {
      return done({ ok: false, statusCode: null, error: errorText(error) });
    }
  }

  /** An error text never carries the target URL (a Slack URL's path is its token). */
  private hideUrl(text: string, url: string): string {
    return text.split(url).join("<the channel's URL>");
  }

  private async email(smtp: SmtpSettings, password: string | null, n: Notification, signal?: AbortSignal): Promise<Omit<ChannelSendResult, "latencyMs">> {
    const deadline = Date.now() + this.timeoutMs;
    // Resolved and judged here; nodemailer connects to the address that was judged.
    const host = smtp.host.replace(/^\[|\]$/g, "");
    const [address] = await resolveAllowed(host, this.judge);
    const left = Math.max(1, deadline - Date.now());
    const transport = nodemailer.createTransport({
      host: address!.address,
      port: smtp.port,
      secure: smtp.tls === "implicit",
      requireTLS: smtp.tls === "starttls",
      ignoreTLS: smtp.tls === "none",
      tls: { servername: host },
      auth: smtp.username ? { user: smtp.username, pass: password ?? "" } : undefined,
      connectionTimeout: left,
      greetingTimeout: left,
      socketTimeout: left,
      // Its own logger off: it would print the SMTP dialogue (AUTH included).
      logger: false,
      debug: false,
    });
    let timer: NodeJS.Timeout | undefined;
    const abort = () => transport.close();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      const info = await Promise.race([
        transport.sendMail({ from: smtp.from, to: [...smtp.to], subject: n.title, text: n.text }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            transport.close();
            reject(new Error(this.timeoutText));
          }, left);
        }),
      ]);
      const code = Number(/^(\d{3})/.exec(String(info.response ?? ""))?.[1] ?? 250);
      if (info.rejected.length > 0)
        return { ok: false, statusCode: code, error: storableText(`refused recipients: ${info.rejected.join(", ")}`, ERROR_TEXT_LIMIT) };
      return { ok: true, statusCode: code, error: null };
    } catch (error) {
      const e = error as Error & { responseCode?: number };
      return { ok: false, statusCode: e.responseCode ?? null, error: e.message === this.timeoutText ? this.timeoutText : errorText(error) };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      transport.close();
    }
  }
}
