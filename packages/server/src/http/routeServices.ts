import type { Logger } from "pino";
import type { Config } from "../config.ts";
import type { Dispatcher } from "../dispatch/dispatcher.ts";
import type { SubscriptionCache } from "../dispatch/subscriptionCache.ts";
import type { Metrics } from "../metrics.ts";
import type { Publisher } from "../publish/publisher.ts";
import type { Db } from "../store/db.ts";
import type { Authenticator } from "./auth.ts";

/** What the HTTP routes need, passed in rather than reached for. */
export interface Services {
  config: Config;
  db: Db;
  log: Logger;
  auth: Authenticator;
  publisher: Publisher;
  dispatcher: Dispatcher;
  subscriptions: SubscriptionCache;
  metrics: Metrics;
  checkEndpointUrl(url: string, field: string): string;
  ready(): Promise<boolean>;
}
