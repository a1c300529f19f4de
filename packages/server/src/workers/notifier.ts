import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { passes, type ChannelRow } from "../domain/channel.ts";
import { buildNotification, rateLimitWaitMs, retryDelayMs, testNotification, type AlertEvent, type Notification } from "../domain/notification.ts";
import type { ClaimedChannel, SendOutcome } from "../store/notifierClaims.ts";
import type { ChannelSendResult } from "../transports/channelSenders.ts";

/** What the notifier does with the database and the network, passed in. */
export interface NotifierOps {
  claim(lease: string, leaseMs: number, limit: number): Promise<ClaimedChannel[]>;
  eventsAfter(cursorTx: string, cursor: number, limit: number): Promise<AlertEvent[]>;
  recentSends(channelId: number): Promise<Date[]>;
  record(channelId: number, lease: string, outcome: SendOutcome): Promise<boolean>;
  release(channelId: number, lease: string, last: { tx: string; id: number } | null, waitMs: number): Promise<void>;
  send(channel: ChannelRow, notification: Notification, signal?: AbortSignal): Promise<ChannelSendResult>;
}

export interface NotifierOptions {
  /** How often to look for channels with events waiting. */
  pollIntervalMs: number;
  /** How long a node owns a channel it took: several times a send's deadline. */
  leaseMs: number;
  /** Channels sending at once per process. */
  concurrency: number;
  /** The console's public URL, for the links. */
  publicUrl: () => string;
}

/** Events one notification covers at most; more wait for the next one. */
export const EVENTS_PER_NOTIFICATION = 500;

/**
 * Tells the notification channels about alert events. Each channel is taken by one node at a
 * time (a lease in the database), which sends everything waiting for it as ONE notification
 * (a digest when there are several events), within the channel's rate limit, and moves its
 * cursor past them when it went through; a failure waits for the next step of the channel's
 * retry schedule, events piling up meanwhile go in the next digest. Channels are sent to
 * independently: a slow or failing one holds no other (each send has its own deadline, and
 * the next claim does not wait for it).
 */
export class Notifier {
  private timer: NodeJS.Timeout | null = null;
  private readonly inFlight = new Map<number, Promise<void>>();
  private readonly abort = new AbortController();
  private ticking: Promise<void> | null = null;
  private stopped = false;
  private readonly lease = `${randomBytes(6).toString("hex")}`;

  constructor(
    private readonly ops: NotifierOps,
    private readonly options: NotifierOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.schedule(0);
  }

  /** Sends a test notification to a channel now (outside its cursor, limit and retries) and says what happened. */
  test(channel: ChannelRow): Promise<ChannelSendResult> {
    return this.ops.send(channel, testNotification(channel.id, this.options.publicUrl(), new Date()), this.abort.signal);
  }

  /** Looks for waiting events now (a channel was created or changed). */
  wake(): void {
    if (!this.stopped) this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.ticking ??= this.tick().finally(() => {
        this.ticking = null;
        this.schedule(this.options.pollIntervalMs);
      });
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const room = this.options.concurrency - this.inFlight.size;
    if (room <= 0) return;
    let claimed: ClaimedChannel[];
    try {
      claimed = await this.ops.claim(this.lease, this.options.leaseMs, room);
    } catch (error) {
      this.log.warn({ err: error }, "notifier: claiming channels failed");
      return;
    }
    for (const c of claimed) {
      const work = this.handle(c)
        .catch((error: unknown) => this.log.warn({ err: error, channel: c.channel.name }, "notifier: a channel's round failed"))
        .finally(() => this.inFlight.delete(c.channel.id));
      this.inFlight.set(c.channel.id, work);
    }
  }

  private async handle({ channel, lease }: ClaimedChannel): Promise<void> {
    const events = await this.ops.eventsAfter(channel.cursorTx, channel.cursor, EVENTS_PER_NOTIFICATION);
    if (events.length === 0) return this.ops.release(channel.id, lease, null, 0);
    const last = events[events.length - 1]!;
    const told = events.filter((e) => passes(channel.filter, e));
    // Nothing its filter lets through: moved past, nothing sent.
    if (told.length === 0) return this.ops.release(channel.id, lease, last, 0);
    const waitMs = rateLimitWaitMs(await this.ops.recentSends(channel.id), channel.perMinute, Date.now());
    if (waitMs > 0) {
      // Over its limit: what waits goes as one digest when the next slot opens.
      await this.ops.release(channel.id, lease, null, waitMs);
      return;
    }
    const result = await this.ops.send(channel, buildNotification(channel.id, told, this.options.publicUrl()), this.abort.signal);
    if (this.abort.signal.aborted && !result.ok) {
      // Shutting down: given back untouched, for this or another node to send.
      await this.ops.release(channel.id, lease, null, 0);
      return;
    }
    const outcome: SendOutcome = {
      lastTx: last.tx,
      lastEvent: last.id,
      firstEvent: told[0]!.id,
      events: told.length,
      error: result.ok ? null : (result.error ?? "failed"),
      retryMs: result.ok ? 0 : retryDelayMs(channel.retrySchedule, channel.failures + 1),
    };
    const kept = await this.ops.record(channel.id, lease, outcome);
    if (!kept) this.log.warn({ channel: channel.name }, "notifier: a channel's lease ran out before its outcome was written");
    else if (!result.ok) this.log.warn({ channel: channel.name, error: result.error, retryMs: outcome.retryMs }, "notifier: a notification failed");
    // More may be waiting (past EVENTS_PER_NOTIFICATION, or arrived meanwhile): look at once.
    if (result.ok) this.wake();
  }

  /** Stops claiming; sends in flight get `graceMs`, then are aborted (their channels given back). */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const all = () => Promise.allSettled([this.ticking, ...this.inFlight.values()]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all(), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    this.abort.abort();
    await all();
  }
}
