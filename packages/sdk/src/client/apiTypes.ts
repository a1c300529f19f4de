// The service's answers and the bodies and queries it takes, named for the client. They are picked
// from openapi.ts, generated from the service's OpenAPI document (`npm run gen:api`), so they
// follow the routes' schemas; only what the client adds (numbers for `limit`, Dates, waits) is
// written here.
import type { components, paths } from "./openapi.ts";

export type { components as ApiComponents, paths as ApiPaths } from "./openapi.ts";

type Schemas = components["schemas"];

/** An HTTP method of the API, as the document spells it. */
export type ApiMethod = "get" | "post" | "patch" | "delete";

/** The API's paths that take `method` (`/v1/alerts/{id}`, …). */
export type ApiPath<M extends ApiMethod> = { [P in keyof paths]: paths[P] extends { [K in M]: object } ? P : never }[keyof paths];

type Operation<M extends ApiMethod, P extends ApiPath<M>> = paths[P][M];
type JsonOf<R> = R extends { content: { "application/json": infer T } } ? T : never;

/** The JSON an operation answers with `status` (200 unless said). */
export type ApiAnswer<M extends ApiMethod, P extends ApiPath<M>, S extends number = 200> =
  Operation<M, P> extends { responses: infer R } ? (S extends keyof R ? JsonOf<R[S]> : never) : never;

/** The JSON of any success an operation may answer (200, 201 or 202); `never` when it answers none. */
export type ApiSuccess<M extends ApiMethod, P extends ApiPath<M>> =
  Operation<M, P> extends { responses: infer R } ? { [S in keyof R & (200 | 201 | 202)]: JsonOf<R[S]> }[keyof R & (200 | 201 | 202)] : never;

/** The JSON body an operation takes. */
export type ApiBody<M extends ApiMethod, P extends ApiPath<M>> = Operation<M, P> extends { requestBody?: infer B } ? JsonOf<NonNullable<B>> : never;

/** The query parameters an operation takes, as the service reads them (text). */
export type ApiQuery<M extends ApiMethod, P extends ApiPath<M>> = Operation<M, P> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

/** The path parameters of an operation (`{ id: string }`). */
export type ApiParams<M extends ApiMethod, P extends ApiPath<M>> = Operation<M, P> extends { parameters: { path: infer T } } ? T : Record<string, never>;

/** A query as the client takes it: `limit` a number, and `cursor` as a page's `nextCursor` gave it. */
type PagedQuery<Q> = Omit<Q, "limit" | "cursor"> &
  (Q extends { limit?: unknown } ? { limit?: number } : unknown) &
  (Q extends { cursor?: unknown } ? { cursor?: string | number } : unknown);

// ---- errors

/** The service's error body: `{ error: { code, message, field? } }`. */
export type ApiError = Schemas["Error"];

// ---- messages

/** A stored message, as the query API returns it. */
export type MessageInfo = Schemas["Message"];
/** A delivery of a message to one subscription, as the service reports it. */
export type DeliveryInfo = Schemas["Delivery"];
/** One delivery attempt, as the delivery log shows it. */
export type AttemptInfo = Schemas["Attempt"];
/** One check-back of a prepared message, as the check log shows it. */
export type CheckInfo = Schemas["Check"];
/** What the service answers for one id of a combined commit. */
export type CommitResult = Schemas["CommitResult"];

/**
 * `messages.lookup`'s answer: of the ids asked, those of messages the key may read with their
 * state (`found`), and the others (`missing`), each as asked and in the order asked.
 */
export type MessageLookup = ApiAnswer<"post", "/v1/messages/lookup">;

/** How long the service waits before checking a prepared message back: "500ms", "10s", "5m", or milliseconds. */
export type CheckAfter = string | number;

/**
 * The messages `messages.list` finds: by id, key, topic, tag, app, creation time, state (`in_doubt`:
 * prepared messages whose check-backs ran out), or a subscription's delivery state. `limit` is
 * 1..1000; the service's default is 50.
 */
export type ListMessagesQuery = PagedQuery<ApiQuery<"get", "/v1/messages">>;
/** One page of `messages.list`. */
export type MessagePage = ApiAnswer<"get", "/v1/messages">;

/** The whole answer to a batch (`POST /v1/messages/batch`). */
export type BatchAnswer = ApiAnswer<"post", "/v1/messages/batch", 201>;
/**
 * The minimal answer to a batch: `outcomes[i]` says what became of `ids[i]`. Not atomic, a
 * message refused on its own is `invalid` (its id null when none was sent), and `errors` say why.
 */
export type BatchOutcomes = Pick<BatchAnswer, "outcomes" | "errors"> & { ids: NonNullable<BatchAnswer["ids"]> };

/** Which of a message's deliveries a re-send or mark-dead is about (none: all), and why. */
export type DeliveryTarget = ApiBody<"post", "/v1/messages/{id}/resend">;

// ---- subscriptions, deliveries, jobs

/** A subscription as the service shows it (`secret` only when created or rotated). */
export type SubscriptionInfo = Schemas["Subscription"];
/** What `subscriptions.create` takes. */
export type NewSubscription = ApiBody<"post", "/v1/subscriptions">;
/** What `subscriptions.update` takes: the fields to change, or `rotateSecret`. */
export type SubscriptionChanges = ApiBody<"patch", "/v1/subscriptions/{name}">;
/** A subscription's circuit breaker and its history. */
export type SubscriptionHealth = Schemas["SubscriptionHealth"];

/** A delivery as `deliveries.list` shows it, with its message's topic, tag and key. */
export type ListedDelivery = Schemas["ListedDelivery"];
/** What `deliveries.list` finds: a state (`dead`: the dead letters), a subscription. */
export type ListDeliveriesQuery = PagedQuery<ApiQuery<"get", "/v1/deliveries">>;
/** One page of `deliveries.list`. */
export type DeliveryPage = ApiAnswer<"get", "/v1/deliveries">;

/** A background job (re-sending dead deliveries, recovering a window) and its progress. */
export type JobInfo = Schemas["Job"];
/** How much of a subscription's dead deliveries to re-send, and in batches of how many. */
export type ResendDeadOptions = ApiBody<"post", "/v1/subscriptions/{name}/resend-dead">;
/** `{ resent, batches }` once done; with `job` when it goes on in the background. */
export type ResendDeadResult = ApiSuccess<"post", "/v1/subscriptions/{name}/resend-dead">;
/** The window of messages whose dead and failed deliveries a recovery re-sends. */
export type RecoverOptions = ApiBody<"post", "/v1/subscriptions/{name}/recover">;

/** The console's overview: counts by state, the oldest pending delivery, throughput per minute. */
export type Stats = ApiAnswer<"get", "/v1/stats">;

// ---- alerts

/**
 * An alert for people, grouped: one is open per condition and subject at a time, counting its
 * occurrences with the latest as examples. open → acknowledged → resolved.
 */
export type AlertInfo = Schemas["Alert"];
/** Which alerts `alerts.list` finds: unresolved ones unless `state` says otherwise. */
export type ListAlertsQuery = PagedQuery<Omit<ApiQuery<"get", "/v1/alerts">, "open">>;
/** One page of alerts. */
export type AlertPage = ApiAnswer<"get", "/v1/alerts">;

// ---- apps, relays

/** A producer app (the API key and secret are only in `create`'s answer, and a rotation's). */
export type AppInfo = Schemas["App"];
/** What `apps.create` takes. */
export type NewApp = ApiBody<"post", "/v1/apps">;
/** An app just created, with its API key and check-back secret, shown this once. */
export type AppCreated = ApiAnswer<"post", "/v1/apps", 201>;
/** What `apps.update` takes: a check URL, read topics, `enabled`, or a rotation. */
export type AppChanges = ApiBody<"patch", "/v1/apps/{name}">;
/** An app changed, with the new key or secret when one was rotated. */
export type AppChanged = ApiAnswer<"patch", "/v1/apps/{name}">;

/** What an outbox relay reports in a heartbeat (`POST /v1/relays/heartbeat`). */
export type RelayReport = ApiBody<"post", "/v1/relays/heartbeat">;
/** A relay as `GET /v1/relays` lists it, with whether it is `stale`. */
export type RelayInfo = Schemas["Relay"];
/** The relays, and after how long without a heartbeat one is stale. */
export type RelayList = ApiAnswer<"get", "/v1/relays">;

// ---- feed, outcomes, reconciliations

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
export type FeedMessage = Schemas["FeedMessage"];
/**
 * One page of `GET /v1/feed`: `next` is where the next page starts; `more` false: everything
 * committed so far has been read, and `waiting`: more is committed but not served yet (a
 * transaction older than theirs still runs on the service's database server).
 */
export type FeedPage = ApiAnswer<"get", "/v1/feed">;

/** What the service made of a call's outcome reports. */
export type OutcomesRecorded = ApiAnswer<"post", "/v1/outcomes">;

/** A reconciliation run's report (`POST /v1/reconciliations`). */
export type ReconciliationReport = ApiBody<"post", "/v1/reconciliations">;
/** One difference a reconciliation run found, and what it did about it. */
export type ReconciliationDifference = ReconciliationReport["differences"][number];
/** A stored report, as the service answers it. */
export type ReconciliationInfo = Schemas["ReconciliationRun"];
/** Which stored reports `reconciliations.list` finds. */
export type ListReconciliationsQuery = PagedQuery<Omit<ApiQuery<"get", "/v1/reconciliations">, "differences">> & {
  /** Only runs that found differences (missing or failed). */
  differences?: boolean;
};
/** One page of stored reports. */
export type ReconciliationPage = ApiAnswer<"get", "/v1/reconciliations">;
