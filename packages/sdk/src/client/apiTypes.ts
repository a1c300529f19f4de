// The service's answers and the queries it takes, as the client types them.

/** A delivery of a message to one subscription, as the service reports it. */
export interface DeliveryInfo {
  subscription: string;
  state: "pending" | "delivered" | "dead" | string;
  attempts: number;
  nextAttemptAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  deadAt: string | null;
  deadReason: string | null;
}

/** A stored message, as the query API returns it. */
export interface MessageInfo {
  id: string;
  app: string | null;
  topic: string;
  tag: string | null;
  key: string | null;
  payload: unknown;
  headers: Record<string, string>;
  state: "prepared" | "committed" | "rolled_back" | string;
  deliverAt: string;
  createdAt: string;
  committedAt: string | null;
  rolledBackAt: string | null;
  /** Check-backs made while prepared. */
  checks?: number;
  nextCheckAt?: string | null;
  /** Set when the checks ran out with the message still prepared: it waits for a person. */
  inDoubtAt?: string | null;
  deliveries?: DeliveryInfo[];
}

/**
 * The minimal answer to a batch: `outcomes[i]` says what became of `ids[i]`. Not atomic, a
 * message refused on its own is `invalid` (its id null when none was sent), and `errors` say why.
 */
export interface BatchOutcomes {
  ids: Array<string | null>;
  outcomes: Array<"created" | "exists" | "conflict" | "invalid">;
  errors?: Array<{ index: number; code: string; message: string; field?: string }>;
}

/** One check-back of a prepared message, as the check log shows it. */
export interface CheckInfo {
  at: string;
  check: number;
  statusCode: number | null;
  answer: "commit" | "rollback" | "unknown" | string | null;
  latencyMs: number;
  error: string | null;
}

/** One delivery attempt, as the delivery log shows it. */
export interface AttemptInfo {
  at: string;
  subscription: string;
  attempt: number;
  outcome: string;
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
}

/**
 * An alert for people, grouped: one is open per condition and subject at a time, counting its
 * occurrences with the latest as examples. open → acknowledged → resolved.
 */
export interface AlertInfo {
  id: number;
  /** delivery_dead, key_blocked, message_in_doubt, circuit_open, subscription_auto_paused, pending_too_old, check_url_failing, … */
  condition: string;
  /** What it is about, and its group: "subscription orders", "app shop", "admin". */
  subject: string;
  subscription: string | null;
  app: string | null;
  state: "open" | "acknowledged" | "resolved";
  count: number;
  firstAt: string;
  lastAt: string;
  /** The latest occurrence. */
  detail: string;
  /** The latest occurrences, newest first, at most 10. */
  examples: Array<{ messageId?: string; deliveryId?: number; detail?: string; at?: string }>;
  /** The console page to act on it (a hash path under /console). */
  link: string | null;
  nextStep: string | null;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  acknowledgeNote: string | null;
  resolvedAt: string | null;
  /** "tidings" when its condition cleared. */
  resolvedBy: string | null;
  resolveNote: string | null;
}

/** A producer app (the API key and secret are only in `create`'s answer). */
export interface AppInfo {
  name: string;
  checkUrl: string | null;
  /** Topics whose messages (besides its own) the app's key may read. */
  readTopics?: string[];
  createdAt: string;
  updatedAt?: string;
}

/** How long the service waits before checking a prepared message back: "500ms", "10s", "5m", or milliseconds. */
export type CheckAfter = string | number;

export interface ListMessagesQuery {
  key?: string;
  topic?: string;
  /** `in_doubt`: prepared messages whose check-backs ran out. */
  state?: "prepared" | "committed" | "rolled_back" | "in_doubt";
  /** 1..1000; the service's default is 50. */
  limit?: number;
  cursor?: string;
}

export interface MessagePage {
  items: MessageInfo[];
  nextCursor: string | null;
}

/** What an outbox relay reports in a heartbeat (`POST /v1/relays/heartbeat`). */
export interface RelayReport {
  /** The relay's name, unique within its app. */
  name: string;
  /** The app it ships for; only with the admin key (an app's key names its own app). */
  app?: string;
  /** Outbox rows waiting to be shipped (counted up to 100000). */
  pending: number;
  /** Outbox rows it gave up on (counted up to 100000). */
  failed: number;
  /** How long the oldest waiting row has waited; null when none waits. */
  oldestPendingSeconds: number | null;
  /** When it last shipped a batch (ISO 8601); null when it has not since it started. */
  lastSentAt: string | null;
  /** How often it reports. */
  intervalMs?: number;
  /** It is stopping on purpose: not awaited any more. */
  stopped?: boolean;
}

/** A relay as `GET /v1/relays` lists it. */
export interface RelayInfo extends Omit<RelayReport, "app" | "stopped" | "intervalMs"> {
  app: string | null;
  intervalMs: number;
  firstSeenAt: string;
  lastSeenAt: string;
  stoppedAt: string | null;
  heartbeatAgeSeconds: number;
  /** Not stopped, and no heartbeat for longer than the service's TIDINGS_RELAY_STALE_AFTER. */
  stale: boolean;
}

/** What `client.feed()` reads: one of `topic` or `subscription`, and where to start. */
export interface FeedQuery {
  /** The topic's committed messages (an app key sees its own, or all of one of its `readTopics`). */
  topic?: string;
  /** The committed messages routed to this subscription: its topic and tags. */
  subscription?: string;
  /** A `cursor` kept from an earlier read; none: from the oldest message the service keeps. */
  after?: string;
  /** Only messages committed at or after this (ISO 8601 or a Date). */
  since?: string | Date;
  /** Only messages committed before this. */
  until?: string | Date;
  /** Messages per request, 1–5000; the service's default is 500. */
  pageSize?: number;
  /**
   * How long iterating waits for messages committed but not served yet (an older transaction
   * still runs on the database server) before it ends anyway: default 30 s; 0: it does not wait.
   * A reconciliation must see everything committed when it reads.
   */
  waitMs?: number;
}

/** A committed message as the feed gives it. `id` is the full id (`<app>/<id>`), as deliveries carry it. */
export interface FeedMessage {
  id: string;
  topic: string;
  tag: string | null;
  key: string | null;
  payload: unknown;
  headers: Record<string, string>;
  createdAt: string;
  committedAt: string;
}

/** One page of `GET /v1/feed`. */
export interface FeedPage {
  items: FeedMessage[];
  /** Where the next page starts (opaque). */
  next: string;
  /** More may follow now; false: everything committed so far has been read. */
  more: boolean;
  /**
   * With `more` false: messages are committed but not served yet (a transaction older than theirs
   * still runs on the service's database server); ask again shortly.
   */
  waiting?: boolean;
}

/** One difference a reconciliation run found, and what it did about it. */
export interface ReconciliationDifference {
  /** The message's full id (`<app>/<id>`), or an outbox row's message id. */
  id: string;
  /**
   * `missing`: committed at the service, not in the consumer's inbox; `failed`: the consumer's
   * handling failed; `unknown_to_service`: an outbox row marked sent that the service does not
   * have; `not_sent`: an outbox row the relay gave up on.
   */
  problem: "missing" | "failed" | "unknown_to_service" | "not_sent";
  /** `applied` through the inbox, `resent` to the service, `none` (listed only), or the repair `failed`. */
  action: "applied" | "resent" | "none" | "failed";
  /** Why the repair (or the handling) failed; up to 2000 characters. */
  error?: string | null;
}

/** A reconciliation run's report (`POST /v1/reconciliations`). */
export interface ReconciliationReport {
  /** `consumer`: the service's messages against an inbox; `producer`: an outbox against the service. */
  kind: "consumer" | "producer";
  /** What was reconciled: a consumer's subscription, or a topic. One at least. */
  subscription?: string | null;
  topic?: string | null;
  /** Who ran it (e.g. host:pid, or a job's name): letters, digits, `_ . : @ -`, up to 128. */
  reporter: string;
  /** The window of commit (or outbox) times looked at. */
  since: string;
  until: string;
  startedAt: string;
  finishedAt: string;
  /** Integers 0–10¹²: messages compared, differences found, repaired, and repairs that failed. */
  counts: { checked: number; missing: number; repaired: number; failed: number };
  /** Up to 1000 differences; those beyond are only counted. */
  differences: ReconciliationDifference[];
  /** Differences found but left out of `differences`. */
  differencesOmitted?: number;
}

/** A stored report as `GET /v1/reconciliations` answers it. */
export interface ReconciliationInfo extends Required<Omit<ReconciliationReport, "subscription" | "topic">> {
  id: number;
  /** The app whose key reported it; null when a person did. */
  app: string | null;
  subscription: string | null;
  topic: string | null;
  receivedAt: string;
}
