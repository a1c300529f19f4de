import type pg from "pg";
import type { Logger } from "pino";
import type { Db } from "../store/db.ts";
import type { SubscriptionRow } from "../domain/subscription.ts";
import { listSubscriptions, SUBSCRIPTIONS_CHANNEL } from "../store/subscriptions.ts";

/**
 * Every node keeps the (small) subscriptions table in memory. It reloads on LISTEN/NOTIFY
 * from any node's change, after its own changes at once, and every `refreshMs` as a safety net.
 */
export class SubscriptionCache {
  private byId = new Map<number, SubscriptionRow>();
  private enabled: number[] = [];
  private ordered = false;
  private listener: pg.PoolClient | null = null;
  /** Gives the listener's connection up (destroyed) and listens anew a second later. */
  private dropListener: (() => void) | null = null;
  /** A check of the listener's connection is waiting for its answer. */
  private checking = false;
  /** The next attempt to listen, when one is due (at most one: two would each hold a connection). */
  private retry: NodeJS.Timeout | null = null;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private reloading: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly refreshMs = 10_000,
    /** Other channels to listen on with the same connection, and what to do on each. */
    private readonly channels: Readonly<Record<string, () => void>> = {},
    /** Where the LISTEN connection comes from: a direct one when `db` is a transaction-mode pooler, which cannot carry LISTEN. */
    private readonly listenDb: Db = db,
  ) {}

  async start(): Promise<void> {
    await this.reload();
    await this.listen();
    this.timer = setInterval(() => {
      void this.reload().catch(() => {});
      void this.checkListener();
    }, this.refreshMs);
    this.timer.unref();
  }

  private listenLater(): void {
    if (this.stopped || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.listen();
    }, 1000);
    this.retry.unref();
  }

  /**
   * Takes a connection of its own and LISTENs on it; on any failure the connection goes back
   * destroyed and one attempt follows a second later. A failed LISTEN used to keep its connection
   * (checked out for good: during a failover a router may reach the new primary before its
   * promotion ends, where LISTEN is refused, once a second, until the pool had no connection
   * left), and a connection lost during the LISTEN started two attempts, then two listeners.
   */
  private async listen(): Promise<void> {
    let client: pg.PoolClient | null = null;
    let lost = false;
    const drop = (c: pg.PoolClient) => {
      if (lost) return;
      lost = true;
      c.release(true);
      if (this.listener === c) {
        this.listener = null;
        this.dropListener = null;
      }
      this.listenLater();
    };
    try {
      const c = await this.listenDb.connect();
      client = c;
      c.on("notification", (note) => {
        const other = this.channels[note.channel];
        if (other) other();
        else void this.reload().catch(() => {});
      });
      c.on("error", () => drop(c));
      await c.query(`listen ${SUBSCRIPTIONS_CHANNEL}`);
      for (const channel of Object.keys(this.channels)) await c.query(`listen ${channel}`);
      if (this.stopped) {
        c.removeAllListeners("error");
        c.on("error", () => {});
        c.release(true);
        return;
      }
      this.listener = c;
      this.dropListener = () => drop(c);
    } catch (error) {
      this.log.warn({ err: error }, "could not listen for subscription changes; retrying");
      if (client) drop(client);
      else this.listenLater();
      return;
    }
    // What changed while nobody listened.
    await this.reload().catch(() => {});
  }

  /**
   * A LISTEN connection to a machine that died without closing it (power, network) would wait
   * for the kernel's keepalive for many minutes, deaf to every change; a query with a deadline
   * on each refresh finds it and listens anew.
   */
  private async checkListener(): Promise<void> {
    const listener = this.listener;
    const drop = this.dropListener;
    if (!listener || !drop || this.checking) return;
    this.checking = true;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("the LISTEN connection did not answer in 5 s")), 5000);
      timer.unref();
    });
    try {
      await Promise.race([listener.query("select 1"), deadline]);
    } catch (error) {
      if (this.listener !== listener) return;
      this.log.warn({ err: error }, "the LISTEN connection is gone; listening anew");
      drop();
    } finally {
      clearTimeout(timer);
      this.checking = false;
    }
  }

  /** Reloads; concurrent calls coalesce into at most one more load. */
  reload(): Promise<void> {
    if (this.reloading) {
      this.again = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.again = false;
        const rows = await listSubscriptions(this.db);
        this.byId = new Map(rows.map((s) => [s.id, s]));
        this.enabled = rows.filter((s) => s.enabled).map((s) => s.id);
        this.ordered = rows.some((s) => s.ordering === "key");
      } while (this.again);
    })().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  get(id: number): SubscriptionRow | undefined {
    return this.byId.get(id);
  }

  all(): Iterable<SubscriptionRow> {
    return this.byId.values();
  }

  enabledIds(): readonly number[] {
    return this.enabled;
  }

  /** Whether some subscription is ordered by key (claims then take keys' heads only). */
  anyOrdered(): boolean {
    return this.ordered;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    if (this.timer) clearInterval(this.timer);
    if (this.listener) {
      // No reconnect from here on, but keep a listener: the connection closes asynchronously, and
      // an error on it meanwhile (the server shutting down) must not become an uncaught exception.
      this.listener.removeAllListeners("error");
      this.listener.on("error", () => {});
      this.listener.release(true);
      this.listener = null;
      this.dropListener = null;
    }
  }
}
