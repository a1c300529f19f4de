import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { Dispatcher } from "../delivery/dispatcher.ts";
import type { SubscriptionCache } from "../delivery/subscriptionCache.ts";
import type { Publisher } from "../publish/publisher.ts";
import type { Db } from "../store/db.ts";
import type { Notifier } from "../workers/notifier.ts";
import type { ResendDeadJobs } from "../workers/resendDeadJobs.ts";
import type { Authenticator } from "./auth.ts";

/**
 * The settings the HTTP side reads, named here so that it depends on what it uses rather than
 * on the service's whole configuration (which satisfies this as it is).
 */
export interface HttpSettings {
  readonly bodyLimitBytes: number;
  /** A request (headers and body) must arrive within this; a slower client is cut off (408). */
  readonly requestTimeoutMs: number;
  /** Whose X-Forwarded-For / -Proto to believe: nobody, anyone, a hop count, or proxies' addresses and CIDRs. */
  readonly trustProxy: boolean | number | readonly string[];
  /** Payload and header bytes per page of a message list (a page ends early past it). */
  readonly listBytes: number;
  /** Prepared messages: the default wait before the first check-back. */
  readonly checkAfterMs: number;
  /** An outbox relay whose last heartbeat is older than this is stale. */
  readonly relayStaleAfterMs: number;
  /** The topic completed messages are announced on (`message.completed`); null: not announced. */
  readonly completedTopic: string | null;
  /** PostgreSQL statement_timeout of every statement (0: none): the feed's `since` margin grows with it. */
  readonly dbStatementTimeoutMs: number;
}

/** What the HTTP routes need, passed in rather than reached for. */
export interface RouteServices {
  config: HttpSettings;
  db: Db;
  /**
   * For lists, search and stats only (DATABASE_READ_URL, a replica that may lag; else `db`):
   * never for a read that must see the caller's own fresh write.
   */
  readDb: Db;
  log: Logger;
  auth: Authenticator;
  publisher: Publisher;
  dispatcher: Dispatcher;
  subscriptions: SubscriptionCache;
  /** The service's metrics, as `/metrics` prints them. */
  metrics: { readonly registry: Pick<Registry, "metrics" | "contentType"> };
  /** Runs re-send-dead jobs; the service starts and stops it. */
  resendJobs: ResendDeadJobs;
  /** Sends the notification channels' tests, and is woken when a channel changes. */
  notifier: Pick<Notifier, "test" | "wake">;
  checkEndpointUrl(url: string, field: string): string;
  ready(): Promise<boolean>;
}
